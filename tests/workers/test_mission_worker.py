"""The mission worker: child runs as real ``nexusmon`` processes in real workspaces.

Recursion tests are bounded by the missions themselves (an input that shrinks at
each level and an ``if`` that stops at the empty string), so a broken cycle guard
makes a few runs too many and never a fork bomb.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine.helpers import Workspace, kill_group, task

from nexusmon.workers.base import Task
from nexusmon.workers.mission import MAX_DEPTH, MISSION_STACK_ENV, MissionWorker, nesting_problem

SECRET = "topsecretvalue77"
SLEEPER = """
    mission: sleeper
    objective: sleeps in a process group of its own
    tasks:
      t:
        run: |
          echo $$ > sleeper.pgid
          bash -c "sleep 30"
    """


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.cleanup()


def runs(ws: Workspace) -> dict[str, str]:
    """Every run in the ledger, oldest first: run id -> "mission status"."""
    return dict(ws.sql("SELECT run_id, mission || ' ' || status FROM runs ORDER BY run_id"))


def handoff_dirs(ws: Workspace) -> list[Path]:
    return sorted((ws.state / "tmp").glob("child-*"))


def group_gone(pgid: int, within: float = 5) -> bool:
    """Whether process group ``pgid`` is empty (within a few seconds: init reaps the killed)."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def wait_for_file(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(encoding="utf-8").strip():
            return path.read_text(encoding="utf-8").strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


# -- a plain child run ---------------------------------------------------------------


def test_child_run_is_linked_to_its_parent_and_reports_its_outputs(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", """
        mission: parent
        objective: calls a child
        tasks:
          c:
            worker: mission
            with: {mission: child, inputs: {x: hello}}
        """)
    ws.write("missions/child.yaml", """
        mission: child
        objective: echoes its input
        inputs:
          x: {type: string}
        tasks:
          t: {run: "echo got {{ inputs.x }}"}
        """)
    doc = ws.run("parent")
    outputs = task(doc, "c")["outputs"]
    assert outputs["status"] == "succeeded"
    assert outputs["tasks"] == {"t": {"stdout": "got hello", "exit_code": 0}}
    child = ws.show(outputs["run_id"])
    assert (child["mission"], child["parent_run_id"]) == ("child", doc["run_id"])
    assert handoff_dirs(ws) == []


# -- cycles and depth -------------------------------------------------------------------


def test_a_mission_calling_itself_fails_before_any_child_starts(ws: Workspace) -> None:
    ws.write("missions/selfcall.yaml", """
        mission: selfcall
        objective: calls itself
        inputs:
          left: {type: string, default: xxxx}
        tasks:
          me:
            if: inputs.left != ""
            worker: mission
            with: {mission: selfcall, inputs: {left: "{{ inputs.left[1:] }}"}}
        """)
    doc = ws.run("selfcall", rc=1, timeout=30)
    assert task(doc, "me")["error"] == "mission cycle: selfcall -> selfcall"
    assert list(runs(ws).values()) == ["selfcall failed"]


def test_a_cycle_through_two_missions_is_named_in_full(ws: Workspace) -> None:
    for me, other, tid in (("ping", "pong", "p"), ("pong", "ping", "q")):
        ws.write(f"missions/{me}.yaml", f"""
            mission: {me}
            objective: calls {other}
            inputs:
              left: {{type: string, default: xxxx}}
            tasks:
              {tid}:
                if: inputs.left != ""
                worker: mission
                with: {{mission: {other}, inputs: {{left: "{{{{ inputs.left[1:] }}}}"}}}}
            """)
    doc = ws.run("ping", rc=1, timeout=30)
    child_id = task(doc, "p")["outputs"]["run_id"]
    assert task(doc, "p")["error"] == (
        f"child run {child_id} failed: task 'q': mission cycle: ping -> pong -> ping"
    )
    assert list(runs(ws).values()) == ["ping failed", "pong failed"]


def test_a_cycle_through_a_mission_path_is_caught_one_level_down(ws: Workspace) -> None:
    ws.write("missions/viapath.yaml", """
        mission: viapath
        objective: calls itself by path
        inputs:
          left: {type: string, default: xxxx}
        tasks:
          me:
            if: inputs.left != ""
            worker: mission
            with: {mission: missions/viapath.yaml, inputs: {left: "{{ inputs.left[1:] }}"}}
        """)
    doc = ws.run("viapath", rc=1, timeout=30)
    assert task(doc, "me")["error"].endswith(": task 'me': mission cycle: viapath -> viapath")
    assert len(runs(ws)) == 2


def test_chains_deeper_than_the_limit_are_refused(ws: Workspace) -> None:
    ws.write("missions/top.yaml", """
        mission: top
        objective: calls leaf
        tasks:
          c: {worker: mission, with: {mission: leaf}}
        """)
    ws.write("missions/leaf.yaml", """
        mission: leaf
        objective: does nothing
        tasks:
          n: {worker: noop}
        """)
    above = [f"m{i}" for i in range(1, MAX_DEPTH)]  # with top and leaf: one run too many
    doc = ws.run("top", rc=1, env={MISSION_STACK_ENV: ",".join(above)})
    assert task(doc, "c")["error"] == (
        f"missions nested more than {MAX_DEPTH} deep: " + " -> ".join([*above, "top", "leaf"])
    )
    ws.run("top", env={MISSION_STACK_ENV: ",".join(above[1:])})  # exactly at the limit


# -- stopping a child -------------------------------------------------------------------


def test_a_timeout_interrupts_the_child_run_and_kills_its_tasks(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", """
        mission: parent
        objective: gives its child 5 seconds
        tasks:
          c: {worker: mission, timeout: 5, with: {mission: sleeper}}
        """)
    ws.write("missions/sleeper.yaml", SLEEPER)
    try:
        doc = ws.run("parent", rc=1, timeout=60)
        pgid = int(ws.read("sleeper.pgid"))
        assert task(doc, "c")["error"] == "timed out after 5s"
        assert group_gone(pgid), "the child's task survived"
        assert sorted(runs(ws).values()) == ["parent failed", "sleeper interrupted"]
        child = ws.show(next(r for r, m in runs(ws).items() if m.startswith("sleeper")))
        assert (task(child, "t")["status"], task(child, "t")["error"]) == ("cancelled", "interrupted")
        assert handoff_dirs(ws) == []
    finally:
        if ws.exists("sleeper.pgid"):
            kill_group(int(ws.read("sleeper.pgid")))


WAITING_PARENT = """
    mission: parent
    objective: waits for its child
    tasks:
      c: {worker: mission, with: {mission: sleeper}}
    """


@contextlib.contextmanager
def parent_with_a_sleeping_child(ws: Workspace) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`run parent` in the background once its child's task sleeps: (runner, the task's group)."""
    ws.write("missions/parent.yaml", WAITING_PARENT)
    ws.write("missions/sleeper.yaml", SLEEPER)
    proc = ws.popen("run", "parent")
    try:
        yield proc, int(wait_for_file(ws.root / "sleeper.pgid"))
    finally:
        if ws.exists("sleeper.pgid"):
            kill_group(int(ws.read("sleeper.pgid")))


def test_ctrl_c_interrupts_the_child_run_and_kills_its_tasks(ws: Workspace) -> None:
    with parent_with_a_sleeping_child(ws) as (proc, pgid):
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130, ws.output("bg")
        assert group_gone(pgid), "the child's task survived"
        assert sorted(runs(ws).values()) == ["parent interrupted", "sleeper interrupted"]
        assert handoff_dirs(ws) == []


def test_a_child_whose_parent_runner_died_interrupts_itself(ws: Workspace) -> None:
    with parent_with_a_sleeping_child(ws) as (proc, pgid):
        os.kill(proc.pid, signal.SIGKILL)  # the parent runner dies without a word
        proc.wait(timeout=10)
        assert group_gone(pgid, within=15), "the orphaned child's task survived"
        deadline = time.monotonic() + 15
        while "sleeper interrupted" not in runs(ws).values() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(runs(ws).values()) == ["parent running", "sleeper interrupted"]


# -- secrets and the inputs file ----------------------------------------------------------

SECRET_PARENT = """
    mission: parent
    objective: hands a secret to its child
    secrets: [MYSEC]
    tasks:
      c:
        worker: mission
        with: {mission: childs, inputs: {s: "{{ secrets.MYSEC }}"}}
    """


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/cmdline")
def test_child_inputs_travel_in_a_private_file_of_the_state_dir(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", SECRET_PARENT)
    # The child's task finds the inputs file on its runner's command line.
    ws.write("missions/childs.yaml", """
        mission: childs
        objective: inspects the inputs file it was started with
        inputs:
          s: {type: string}
        tasks:
          t:
            run: |
              f=$(tr '\\0' '\\n' < /proc/$PPID/cmdline | grep -A1 -x -- --inputs-file | tail -n 1)
              echo "path=$f" >> "$NEXUSMON_OUTPUT"
              echo "mode=$(stat -c %a "$f")" >> "$NEXUSMON_OUTPUT"
              echo "dir_mode=$(stat -c %a "$(dirname "$f")")" >> "$NEXUSMON_OUTPUT"
        """)
    tmpdir = ws.scratch / "tmpdir"
    tmpdir.mkdir()
    result = ws.nx("run", "parent", "--format", "json",
                   env={"MYSEC": SECRET, "TMPDIR": str(tmpdir)})
    assert result.rc == 0, result.err
    seen = task(result.json(), "c")["outputs"]["tasks"]["t"]
    path = Path(seen["path"])
    assert path.parent.parent == ws.state / "tmp"
    assert (seen["mode"], seen["dir_mode"]) == ("600", "700")
    assert not path.exists() and handoff_dirs(ws) == []
    assert list(tmpdir.iterdir()) == []
    assert SECRET not in result.out + result.err


def test_a_secret_handed_to_a_child_is_masked_in_the_childs_records(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", SECRET_PARENT)
    ws.write("missions/childs.yaml", """
        mission: childs
        objective: echoes its input
        inputs:
          s: {type: string}
        tasks:
          t: {run: "echo got {{ inputs.s }}"}
        """)
    doc = ws.run("parent", env={"MYSEC": SECRET})
    assert task(doc, "c")["outputs"]["tasks"]["t"]["stdout"] == "got ***"
    child_id = task(doc, "c")["outputs"]["run_id"]
    child = ws.show(child_id)
    assert (child["inputs"], task(child, "t")["outputs"]["stdout"]) == ({"s": "***"}, "got ***")
    assert ws.nx("logs", child_id, "t").out.strip() == "got ***"
    assert SECRET not in ws.nx("audit", "--format", "json").out
    assert SECRET.encode() not in ws.state_bytes()


@pytest.mark.parametrize("value", ["2", "x", "ok", '"'])
def test_a_short_or_common_secret_does_not_mangle_the_childs_document(ws: Workspace, value: str) -> None:
    """The child's JSON is read as the child wrote it (already masked), then masked like any output."""
    ws.write("missions/parent.yaml", SECRET_PARENT)
    ws.write("missions/childs.yaml", """
        mission: childs
        objective: reports a count
        inputs:
          s: {type: string}
        tasks:
          t: {run: "echo count=5 >> $NEXUSMON_OUTPUT"}
        """)
    doc = ws.run("parent", env={"MYSEC": value})
    outputs = task(doc, "c")["outputs"]
    assert task(doc, "c")["status"] == "succeeded"
    assert outputs["status"] == "succeeded" and outputs["run_id"]
    assert set(outputs["tasks"]["t"]) >= {"count", "exit_code", "stdout"}


# -- how a child run that did not succeed is reported -----------------------------------


def test_a_child_awaiting_approval_is_reported_by_run_id_and_status(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", """
        mission: parent
        objective: calls a gated child
        tasks:
          c: {worker: mission, with: {mission: gated}}
        """)
    ws.write("missions/gated.yaml", """
        mission: gated
        objective: needs an approval
        tasks:
          ship: {rank: A, run: echo shipping}
        """)
    doc = ws.run("parent", rc=1)
    outputs = task(doc, "c")["outputs"]
    assert outputs["status"] == "awaiting_approval"
    assert task(doc, "c")["error"] == (
        f"child run {outputs['run_id']} is awaiting approval for task 'ship'"
    )
    assert ws.show(outputs["run_id"])["status"] == "awaiting_approval"


def test_resuming_the_parent_continues_its_held_child_once_approved(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", """
        mission: parent
        objective: calls a gated child
        tasks:
          c: {worker: mission, with: {mission: gated}}
          after: {needs: [c], run: echo after >> trace.log}
        """)
    ws.write("missions/gated.yaml", """
        mission: gated
        objective: needs an approval
        tasks:
          ship: {rank: A, run: echo shipped >> trace.log}
        """)
    public = ws.nx("keygen", "--name", "alice").out.strip()
    ws.write("policies/ops.yaml", f"""
        policy: ops
        operators:
          - {{name: alice, public_key: "{public}", may_approve: [A]}}
        """)
    first = ws.run("parent", rc=1)
    child = task(first, "c")["outputs"]["run_id"]
    assert ws.run("parent", rc=1)["run_id"] != first["run_id"]  # a new parent run: a new child
    assert ws.nx("approve", child, "ship").rc == 0
    resumed = ws.nx("resume", first["run_id"], "--format", "json")
    assert resumed.rc == 0, resumed.err
    assert task(resumed.json(), "c")["outputs"]["run_id"] == child  # the approved child went on
    assert ws.show(child)["status"] == "succeeded"
    assert ws.lines("trace.log") == ["shipped", "after"]
    assert ws.sql("SELECT count(*) FROM omens")[0][0] == 0  # waiting for an operator is no failure


def test_failed_and_unstartable_children_are_reported_plainly(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", """
        mission: parent
        objective: calls children that do not succeed
        tasks:
          f: {worker: mission, with: {mission: failing}}
          n: {worker: mission, with: {mission: nosuch}}
        """)
    ws.write("missions/failing.yaml", """
        mission: failing
        objective: fails
        tasks:
          a: {run: "exit 3"}
        """)
    doc = ws.run("parent", "--keep-going", rc=1)
    child_id = task(doc, "f")["outputs"]["run_id"]
    assert task(doc, "f")["error"] == f"child run {child_id} failed: task 'a': exit code 3"
    assert task(doc, "n")["error"] == "child mission 'nosuch' did not start: unknown mission 'nosuch'"
    assert task(doc, "n")["outputs"] == {"run_id": None, "status": None, "tasks": {}}


def test_the_worker_enforces_its_own_timeout_by_interrupting_the_child(ws: Workspace) -> None:
    """Called without the executor's deadline, the worker still stops the child like Ctrl-C."""
    ws.write("missions/sleeper.yaml", SLEEPER)
    env = {**ws.env(), "NEXUSMON_STATE_DIR": str(ws.state)}
    job = Task(id="c", mission="parent", run_id="parent-run", worker="mission",
               params={"mission": "sleeper"}, env=env, cwd=ws.root, workspace=ws.root, timeout=5)
    try:
        result = asyncio.run(MissionWorker().execute(job))
        child_id = result.outputs["run_id"]
        assert (result.ok, result.failure_kind) == (False, "timeout")
        assert result.error == f"timed out after 5s; child run {child_id} interrupted"
        assert group_gone(int(ws.read("sleeper.pgid")))
        assert handoff_dirs(ws) == []
    finally:
        if ws.exists("sleeper.pgid"):
            kill_group(int(ws.read("sleeper.pgid")))


@pytest.mark.parametrize(("stack", "target", "problem"), [
    (["a"], "b", None),
    (["a"], "a", "mission cycle: a -> a"),
    (["top", "ping", "pong"], "ping", "mission cycle: ping -> pong -> ping"),
    (["a", "a"], "missions/a.yaml", "mission cycle: a -> a"),
    ([f"m{i}" for i in range(MAX_DEPTH - 1)], "leaf", None),
    ([f"m{i}" for i in range(MAX_DEPTH)], "leaf",
     f"missions nested more than {MAX_DEPTH} deep: "
     + " -> ".join([*(f"m{i}" for i in range(MAX_DEPTH)), "leaf"])),
])
def test_nesting_problem(stack: list[str], target: str, problem: str | None) -> None:
    assert nesting_problem(stack, target) == problem


NAPPER = """
    mission: sleeper
    objective: an in-process task that takes a second to give up, so its run takes that long to stop
    tasks:
      t: {worker: python, with: {function: "nap:nap"}}
    """

NAP = """
import os
import time


def nap():
    with open("sleeper.pgid", "w") as fh:
        fh.write(str(os.getpgid(0)))
    time.sleep(1.5)  # a thread the runner waits for: the child run records its end only after it
    return {}
"""


def test_a_child_run_that_takes_a_while_to_stop_still_records_interrupted(ws: Workspace) -> None:
    ws.write("missions/parent.yaml", WAITING_PARENT)
    ws.write("missions/sleeper.yaml", NAPPER)
    ws.write("nap.py", NAP)
    proc = ws.popen("run", "parent")
    pgid = int(wait_for_file(ws.root / "sleeper.pgid"))
    os.kill(proc.pid, signal.SIGINT)  # one Ctrl-C: the child gets its grace, not SIGKILL at once
    assert proc.wait(timeout=30) == 130, ws.output("bg")
    assert group_gone(pgid)
    assert sorted(runs(ws).values()) == ["parent interrupted", "sleeper interrupted"]
