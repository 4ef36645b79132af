"""`nexusmon run`: retries, timeouts, limits, failures, conditions, odd output, exit codes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import Workspace, statuses, task


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.cleanup()


# -- retries and timeouts --------------------------------------------------------


def test_retries_wait_a_doubling_delay_and_keep_every_attempt(ws: Workspace) -> None:
    ws.write(
        "missions/flaky.yaml",
        """
        mission: flaky
        objective: always fails
        tasks:
          flaky:
            retries: 3
            retry_delay: 0.1
            run: |
              date +%s.%N >> attempts.log
              echo "attempt-output-$(wc -l < attempts.log)"
              exit 7
        """,
    )
    doc = ws.run("flaky", rc=1)
    flaky = task(doc, "flaky")
    assert (flaky["status"], flaky["attempts"], flaky["error"]) == ("failed", 4, "exit code 7")
    stamps = [float(x) for x in ws.lines("attempts.log")]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(gaps) == 3
    for gap, wanted in zip(gaps, (0.1, 0.2, 0.4)):
        assert wanted <= gap < wanted + 0.5, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    logs = ws.nx("logs", "last", "flaky")
    assert logs.rc == 0, logs.err
    for n in range(1, 5):
        assert f"attempt-output-{n}" in logs.out


def test_a_timeout_kills_the_whole_process_group(ws: Workspace) -> None:
    ws.write(
        "missions/slow.yaml",
        """
        mission: slow
        objective: a background child outlives its timeout
        tasks:
          slow:
            timeout: 0.4
            run: |
              (sleep 1.5; touch survivor.txt) &
              wait
        """,
    )
    started = time.monotonic()
    doc = ws.run("slow", rc=1)
    slow = task(doc, "slow")
    assert (slow["status"], slow["error"]) == ("failed", "timed out after 0.4s")
    assert slow["duration_s"] < 1.4
    time.sleep(max(0.0, started + 2.2 - time.monotonic()))
    assert not ws.exists("survivor.txt"), "a process of the timed-out task survived"


MAX_TIME = """
    mission: capped
    objective: wall limit
    constraints: {max_time_seconds: 0.6}
    tasks:
      long:
        run: |
          sleep 1.5
          touch late.txt
      quick:
        run: echo quick
      after:
        needs: [long]
        run: touch after.txt
    """


def test_max_time_seconds_stops_the_run_and_kills_what_runs(ws: Workspace) -> None:
    ws.write("missions/capped.yaml", MAX_TIME)
    started = time.monotonic()
    doc = ws.run("capped", rc=1)
    assert doc["status"] == "failed"
    assert doc["error"] == "the run exceeded constraints.max_time_seconds"
    assert statuses(doc) == {"long": "failed", "quick": "succeeded", "after": "cancelled"}
    assert task(doc, "long")["error"] == "the run exceeded constraints.max_time_seconds"
    assert task(doc, "after")["error"] == "upstream 'long' failed"
    time.sleep(max(0.0, started + 2.4 - time.monotonic()))
    assert not ws.exists("late.txt"), "the task kept running after the run's time limit"
    assert not ws.exists("after.txt")


def test_a_task_killed_by_max_time_seconds_keeps_its_real_duration(ws: Workspace) -> None:
    ws.write("missions/capped.yaml", MAX_TIME)
    long = task(ws.run("capped", rc=1), "long")
    assert long["duration_s"] >= 0.5, long
    assert long["finished_at"] - long["started_at"] >= 0.5, long


# -- failures ------------------------------------------------------------------------

CHAINS = """
    mission: chains
    objective: a failing chain beside a healthy one
    tasks:
      other: {run: "echo other >> trace.log"}
      bad: {run: "echo bad >> trace.log; exit 5"}
      child: {needs: [bad], run: "echo child >> trace.log"}
      grandchild: {needs: [child], run: "echo grandchild >> trace.log"}
      other-next: {needs: [other], run: "echo other-next >> trace.log"}
    """


def test_fail_fast_starts_nothing_new_and_says_why_each_task_was_cancelled(ws: Workspace) -> None:
    ws.write("missions/chains.yaml", CHAINS)
    doc = ws.run("chains", "--concurrency", "1", rc=1)
    assert (doc["status"], doc["error"]) == ("failed", "task 'bad' failed")
    assert [t["id"] for t in doc["tasks"]] == ["other", "bad", "child", "grandchild", "other-next"]
    assert statuses(doc) == {
        "other": "succeeded",
        "bad": "failed",
        "child": "cancelled",
        "grandchild": "cancelled",
        "other-next": "cancelled",
    }
    assert task(doc, "child")["error"] == "upstream 'bad' failed"
    assert task(doc, "grandchild")["error"] == "upstream 'child' cancelled"
    assert task(doc, "other-next")["error"] == "task 'bad' failed"
    assert ws.lines("trace.log") == ["other", "bad"]


def test_keep_going_runs_every_task_not_depending_on_the_failure(ws: Workspace) -> None:
    ws.write("missions/chains.yaml", CHAINS)
    doc = ws.run("chains", "--concurrency", "1", "--keep-going", rc=1)
    assert statuses(doc) == {
        "other": "succeeded",
        "bad": "failed",
        "child": "cancelled",
        "grandchild": "cancelled",
        "other-next": "succeeded",
    }
    assert sorted(ws.lines("trace.log")) == ["bad", "other", "other-next"]


def test_if_on_upstream_outputs_is_decided_at_run_time(ws: Workspace) -> None:
    ws.write(
        "missions/cond.yaml",
        """
        mission: cond
        objective: decide from what a task found
        tasks:
          probe:
            run: echo "deploy=$(cat answer.txt)" >> "$NEXUSMON_OUTPUT"
          go:
            needs: [probe]
            if: tasks.probe.outputs.deploy == 'yes'
            run: touch went.txt
          stop:
            needs: [probe]
            if: tasks.probe.outputs.deploy == 'no'
            run: touch stopped.txt
          after-stop:
            needs: [stop]
            run: echo "stop was {{ tasks.stop.status }}"
          typo:
            needs: [probe]
            if: tasks.probe.outputs.deploi == 'yes'
            run: touch typo.txt
        """,
    )
    ws.write("answer.txt", "yes\n")
    doc = ws.run("cond", "--keep-going", rc=1)
    assert statuses(doc) == {
        "probe": "succeeded",
        "go": "succeeded",
        "stop": "skipped",
        "after-stop": "succeeded",
        "typo": "failed",
    }
    assert task(doc, "after-stop")["outputs"]["stdout"] == "stop was skipped"
    assert task(doc, "typo")["error"] == (
        "missions/cond.yaml:19:9: error: undefined name 'tasks.probe.outputs.deploi' (did you mean 'tasks.probe.outputs.deploy'?)"
    )
    assert ws.exists("went.txt") and not ws.exists("stopped.txt") and not ws.exists("typo.txt")


def test_twenty_megabytes_and_binary_garbage_are_recorded_and_the_run_succeeds(
    ws: Workspace,
) -> None:
    ws.write(
        "missions/noisy.yaml",
        r"""
        mission: noisy
        objective: unruly output
        tasks:
          big:
            run: |
              head -c 20000000 /dev/zero | tr '\0' 'x'
              echo
              echo big-tail >&2
          garbage:
            run: |
              printf 'start\0\377\376'
              head -c 4096 /dev/urandom
              printf 'end'
        """,
    )
    started = time.monotonic()
    doc = ws.run("noisy")
    assert time.monotonic() - started < 20
    assert statuses(doc) == {"big": "succeeded", "garbage": "succeeded"}
    big = task(doc, "big")["outputs"]["stdout"]
    assert big.startswith("x" * 1000) and "bytes truncated" in big and len(big) < 2_000_000
    garbage = task(doc, "garbage")["outputs"]["stdout"]
    assert garbage.startswith("start\0\ufffd\ufffd") and garbage.endswith("end")
    size = sum(p.stat().st_size for p in ws.state.glob("ledger.db*"))
    assert size < 12_000_000, f"the ledger grew to {size} bytes"
    logs = ws.nx("logs", "last", "big")
    assert logs.rc == 0 and logs.out.startswith("xxxx") and len(logs.out) < 3_000_000


# -- failing tasks, one run with --keep-going -------------------------------------

PLUGIN = """
class Boom:
    name = "boom"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        raise RuntimeError("kaboom")


class Nothing:
    name = "nothing"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        return None
"""

FAILURES = """
    mission: failures
    objective: many ways to fail
    tasks:
      missing-direct: {run: no-such-command-nx --flag}
      missing-in-script: {run: "echo before; no-such-command-nx"}
      bad-line: {run: "echo ok=1 >> $NEXUSMON_OUTPUT; echo 'not a pair' >> $NEXUSMON_OUTPUT"}
      reserved: {run: "echo stdout=mine >> $NEXUSMON_OUTPUT"}
      unclosed: {run: "printf 'notes<<EOF\\\\nline\\\\n' >> $NEXUSMON_OUTPUT"}
      boom: {worker: boom}
      after-boom: {needs: [boom], run: touch after-boom.txt}
      fine: {run: echo fine}
    """


@pytest.fixture(scope="module")
def failed_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Workspace, dict[str, Any]]]:
    ws = Workspace(tmp_path_factory.mktemp("failures"))
    ws.write("plugins/boom.py", PLUGIN)
    ws.write("missions/failures.yaml", FAILURES)
    yield ws, ws.run("failures", "--keep-going", rc=1)
    ws.cleanup()


def test_a_missing_executable_fails_its_task_clearly(
    failed_run: tuple[Workspace, dict[str, Any]],
) -> None:
    ws, doc = failed_run
    direct = task(doc, "missing-direct")
    assert (direct["status"], direct["error"]) == (
        "failed",
        "command not found: no-such-command-nx",
    )
    in_script = task(doc, "missing-in-script")
    assert (in_script["status"], in_script["error"]) == (
        "failed",
        "exit code 127 (command not found)",
    )
    assert in_script["outputs"] == {"stdout": "before", "exit_code": 127}
    assert "no-such-command-nx: command not found" in ws.nx("logs", "last", "missing-in-script").out


def test_malformed_output_file_lines_fail_the_task(
    failed_run: tuple[Workspace, dict[str, Any]],
) -> None:
    _, doc = failed_run
    errors = {t: task(doc, t)["error"] for t in ("bad-line", "reserved", "unclosed")}
    assert errors == {
        "bad-line": (
            "$NEXUSMON_OUTPUT line 2: expected key=value or key<<DELIMITER, got 'not a pair'"
        ),
        "reserved": "$NEXUSMON_OUTPUT line 1: output 'stdout' is set by the shell worker",
        "unclosed": "$NEXUSMON_OUTPUT line 1: 'notes<<EOF' is never closed by a 'EOF' line",
    }
    assert all(task(doc, t)["status"] == "failed" for t in errors)


def test_a_plugin_that_raises_fails_its_task_and_the_run_is_recorded(
    failed_run: tuple[Workspace, dict[str, Any]],
) -> None:
    ws, doc = failed_run
    boom = task(doc, "boom")
    assert (boom["status"], boom["error"]) == (
        "failed",
        "worker 'boom' raised RuntimeError: kaboom",
    )
    assert task(doc, "after-boom")["status"] == "cancelled"
    assert not ws.exists("after-boom.txt")
    shown = ws.show(doc["run_id"])
    assert shown["status"] == "failed" and statuses(shown) == statuses(doc)


QUITTER = """
import sys


class Quitter:
    name = "quitter"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        sys.exit(3)
"""


def test_a_plugin_calling_sys_exit_fails_its_task_not_the_runner(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("plugins/quitter.py", QUITTER)
    ws.write("missions/quits.yaml", """
mission: quits
objective: a plugin that calls sys.exit
tasks:
  quit: {worker: quitter}
  after: {needs: quit, run: touch after.txt}
""")
    doc = ws.run("quits", rc=1)  # 1: a task failed (sys.exit(3) is not "held for approval")
    assert (doc["status"], task(doc, "quit")["error"]) == ("failed", "worker 'quitter' called sys.exit(3)")
    assert task(doc, "after")["status"] == "cancelled" and not ws.exists("after.txt")
    assert ws.show(doc["run_id"])["status"] == "failed"


def test_a_keyboard_interrupt_from_a_task_leaves_an_interrupted_run_that_resumes(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("once.py", """
import pathlib


def stop_once():
    marker = pathlib.Path("stopped-once")
    if not marker.exists():
        marker.write_text("")
        raise KeyboardInterrupt
    return {"second": "try"}
""")
    ws.write("missions/stops.yaml", """
mission: stops
objective: a function that raises KeyboardInterrupt
tasks:
  stop: {worker: python, with: {function: "once:stop_once"}}
  slow: {run: "sleep 1 && touch slow.txt"}
""")
    junit = ws.scratch / "junit.xml"
    first = ws.nx("run", "stops", "--concurrency", "2", "--format", "json", "--junit", str(junit))
    assert first.rc == 130, first.err
    shown = ws.show()
    assert first.json() == shown, "run --format json printed no document"
    assert (shown["status"], shown["error"]) == ("interrupted", "interrupted: task 'stop' raised KeyboardInterrupt")
    assert {t["id"]: (t["status"], t["error"]) for t in shown["tasks"]} == {
        "stop": ("cancelled", "interrupted: the task raised KeyboardInterrupt"),
        "slow": ("cancelled", "interrupted"),
    }
    assert 'name="stop"' in junit.read_text(encoding="utf-8")
    time.sleep(1.5)
    assert not ws.exists("slow.txt")  # its process group went with the run
    assert ws.nx("audit", "verify").rc == 0
    resumed = ws.nx("resume", "last", "--format", "json")
    assert resumed.rc == 0, resumed.err
    again = resumed.json()
    assert again["status"] == "succeeded"
    assert task(again, "stop")["outputs"] == {"second": "try"} and ws.exists("slow.txt")


def test_json_of_a_failed_run_lists_every_task_in_plan_order(
    failed_run: tuple[Workspace, dict[str, Any]],
) -> None:
    _, doc = failed_run
    assert doc["status"] == "failed"
    assert [t["id"] for t in doc["tasks"]] == [
        "missing-direct",
        "missing-in-script",
        "bad-line",
        "reserved",
        "unclosed",
        "boom",
        "after-boom",
        "fine",
    ]
    assert task(doc, "fine")["status"] == "succeeded"
    for t in doc["tasks"]:
        assert {
            "id",
            "status",
            "rank",
            "decision",
            "attempts",
            "duration_s",
            "outputs",
            "artifacts",
        } <= set(t)
    assert doc["summary"] == {"failed": 6, "cancelled": 1, "succeeded": 1}


def test_a_plugin_returning_nothing_fails_its_task_not_the_runner(ws: Workspace) -> None:
    ws.write("plugins/boom.py", PLUGIN)
    ws.write(
        "missions/empty.yaml",
        """
        mission: empty
        objective: a plugin bug
        tasks:
          nothing: {worker: nothing}
        """,
    )
    result = ws.nx("run", "empty")
    assert result.rc == 1, result.err
    assert "internal error" not in result.err
    shown = ws.show("last")
    assert shown["status"] == "failed"
    assert task(shown, "nothing")["status"] == "failed"
    assert "nothing" in task(shown, "nothing")["error"]


# -- exit codes -----------------------------------------------------------------------


def test_exit_codes_and_which_status_wins(ws: Workspace) -> None:
    ws.write(
        "policies/deny.yaml",
        """
        policy: deny
        rules:
          - id: no-forbidden
            when: {run_matches: forbidden-op}
            then: {deny: the forbidden op is not allowed}
        """,
    )
    ws.write(
        "missions/held.yaml",
        """
        mission: held
        objective: one gated task
        tasks:
          gated: {rank: A, run: touch gated.txt}
          free: {run: touch free.txt}
        """,
    )
    ws.write(
        "missions/denied.yaml",
        """
        mission: denied
        objective: blocked beats held
        tasks:
          gated: {rank: A, run: touch gated.txt}
          danger: {run: echo forbidden-op}
        """,
    )
    ws.write(
        "missions/worst.yaml",
        """
        mission: worst
        objective: failed beats blocked
        tasks:
          danger: {run: echo forbidden-op}
          bad: {run: exit 1}
        """,
    )
    ws.write(
        "missions/broken.yaml",
        """
        mission: broken
        objective: invalid
        tasks:
          a: {run: echo a}
          b: {needs: [aa], run: echo b}
        """,
    )
    assert ws.run("held", rc=3)["status"] == "awaiting_approval"
    assert ws.exists("free.txt") and not ws.exists("gated.txt")
    assert ws.run("denied", rc=4)["status"] == "blocked"
    assert ws.run("worst", "--keep-going", rc=1)["status"] == "failed"
    runs_before = ws.sql("select count(*) from runs")[0][0]
    broken = ws.nx("run", "broken")
    assert broken.rc == 2
    assert broken.err.splitlines() == [
        "missions/broken.yaml:5:15: error: task 'b' needs unknown task 'aa' (did you mean 'a'?)",
    ]
    unknown = ws.nx("run", "nope")
    assert (unknown.rc, unknown.err) == (2, "error: unknown mission 'nope'\n")
    assert ws.sql("select count(*) from runs")[0][0] == runs_before, "exit 2 means nothing ran"


def test_with_cwd_runs_inside_the_workspace_and_a_bad_one_fails_only_its_task(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("sub/keep.txt", "")
    ws.write("missions/dirs.yaml", """
mission: dirs
objective: with.cwd
inputs:
  where: {type: string, default: sub}
tasks:
  shorthand: {run: pwd, with: {cwd: sub}}
  templated: {run: pwd, with: {cwd: "{{ inputs.where }}"}}
  missing: {run: pwd, with: {cwd: nowhere}}
  fine: {run: pwd}
""")
    doc = ws.run("dirs", "--keep-going", rc=1)
    sub = str((ws.root / "sub").resolve())
    assert task(doc, "shorthand")["outputs"]["stdout"] == sub
    assert task(doc, "templated")["outputs"]["stdout"] == sub
    assert (task(doc, "missing")["status"], task(doc, "missing")["error"]) == (
        "failed", "with.cwd 'nowhere' is not a directory of the workspace",
    )
    assert task(doc, "fine")["outputs"]["stdout"] == str(ws.root.resolve())
    escaped = ws.run("dirs", "-i", "where=/etc", "--keep-going", rc=1)
    assert task(escaped, "templated")["error"] == (
        "with.cwd '/etc' is absolute; paths are relative to the workspace root"
    )


def test_last_names_the_users_run_not_the_child_run_it_started(ws: Workspace) -> None:
    ws.write("missions/child.yaml", """
        mission: child
        objective: started by a mission task
        tasks:
          work: {run: echo child}
        """)
    ws.write("missions/parent.yaml", """
        mission: parent
        objective: starts a child run
        tasks:
          call: {worker: mission, with: {mission: child}}
        """)
    parent = ws.run("parent")
    shown = ws.nx("show", "last", "--format", "json").json()
    assert (shown["run_id"], shown["mission"]) == (parent["run_id"], "parent")


def test_lineage_lists_every_upstream_artifact_not_only_direct_ones(ws: Workspace) -> None:
    ws.write("missions/chain.yaml", """
        mission: chain
        objective: a -> b -> c, artifacts at both ends
        tasks:
          a: {run: echo a > a.txt, artifacts: [a.txt]}
          b: {needs: a, run: "true"}
          c: {needs: b, run: cat a.txt > c.txt, artifacts: [c.txt], sources: [in.txt]}
        """)
    ws.write("in.txt", "input\n")
    doc = ws.run("chain")
    lineage = ws.nx("vault", "lineage", "c.txt@v1", "--format", "json").json()
    assert lineage["upstream"] == [{"path": "a.txt", "version": 1, "task": "a"}]
    assert lineage["sources"] == {"in.txt": "sha256:" + hashlib.sha256(b"input\n").hexdigest()}
    assert [a["path"] for a in task(doc, "c")["artifacts"]] == ["c.txt"]


def test_resume_warns_when_the_mission_file_changed_since_the_run_started(ws: Workspace) -> None:
    mission = """
        mission: edit
        objective: fixed between run and resume
        tasks:
          a: {run: echo a >> trace.log}
          b: {needs: a, run: "exit 1"}
        """
    ws.write("missions/edit.yaml", mission)
    first = ws.run("edit", rc=1)
    ws.write("missions/edit.yaml", mission.replace('"exit 1"', "echo b >> trace.log"))
    resumed = ws.nx("resume", "last", "--format", "json")
    assert resumed.rc == 0
    assert resumed.err.startswith(
        f"warning: missions/edit.yaml changed since run {first['run_id']} started; tasks that "
        "succeeded are kept as they ran, the others run as the file says now\n")
    assert ws.lines("trace.log") == ["a", "b"]


def test_a_rune_output_missing_at_run_time_fails_the_reading_task_not_the_run(ws: Workspace) -> None:
    ws.write("runes/probe.yaml", """
        rune: probe
        version: 1
        tasks:
          inner: {run: echo found=yes >> "$NEXUSMON_OUTPUT"}
        outputs:
          answer: "{{ tasks.inner.outputs.missing }}"
        """)
    ws.write("missions/m.yaml", """
        mission: m
        objective: read a rune output that the rune's task never wrote
        tasks:
          call: {uses: probe}
          after: {needs: [call], run: "echo {{ tasks.call.outputs.answer }}"}
          other: {run: sleep 0.2}
        """)
    assert ws.nx("validate").rc == 0  # which outputs a task writes is only known when it ran
    result = ws.nx("run", "m", "--format", "json", "--keep-going")
    assert result.rc == 1, result.err
    doc = result.json()
    tasks = {t["id"]: t for t in doc["tasks"]}
    assert tasks["after"]["status"] == "failed" and "missing" in tasks["after"]["error"]
    assert statuses(doc) == {"call.inner": "succeeded", "after": "failed", "other": "succeeded"}
    assert "internal error" not in result.err and "running" not in statuses(ws.show()).values()


def test_resume_of_a_run_whose_mission_file_no_longer_parses_names_the_error(ws: Workspace) -> None:
    ws.write("missions/d.yaml", "mission: d\nobjective: fails once\ntasks:\n  t: {run: 'exit 1'}\n")
    assert ws.nx("run", "d").rc == 1
    ws.write("missions/d.yaml", "mission: d\nobjective: fails once\ntasks:\n  t: {run: 'exit 0'\n")
    result = ws.nx("resume", "last")
    assert (result.rc, result.err) == (
        2, "missions/d.yaml:5:1: error: did not find expected ',' or '}' while parsing a flow mapping\n")
    (ws.root / "missions" / "d.yaml").unlink()
    gone = ws.nx("resume", "last")
    assert (gone.rc, gone.err) == (2, "error: mission 'd' of this run no longer exists in the workspace\n")


def test_run_warns_about_a_task_at_the_omen_warn_level(ws: Workspace) -> None:
    ws.write("missions/flaky.yaml", "mission: flaky\nobjective: fails every time\ntasks:\n  t: {run: 'exit 1'}\n")
    for _ in range(3):
        first = ws.nx("run", "flaky", "--format", "json")
        assert first.rc == 1 and "warning:" not in first.err
    for failures, fmt in ((3, "text"), (4, "json")):
        result = ws.nx("run", "flaky", "--format", fmt)
        warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
        assert warnings == [f"warning: task 't': omen warn: {failures} repeated failures (warn at 3)"]


def test_reading_a_skipped_task_s_outputs_names_the_place_and_the_skip(ws: Workspace) -> None:
    ws.write("runes/r.yaml", """
        rune: r
        version: 1
        inputs:
          enabled: {type: boolean, default: false}
        tasks:
          maybe: {run: "echo val=1 >> $NEXUSMON_OUTPUT", if: inputs.enabled}
        outputs:
          val: "{{ tasks.maybe.outputs.val }}"
        """)
    ws.write("missions/m.yaml", """
        mission: m
        objective: read what a skipped task never wrote
        tasks:
          direct: {run: "echo 1", if: "false"}
          call: {uses: r@1}
          a: {needs: [direct], run: "echo {{ tasks.direct.outputs.stdout }}"}
          b: {needs: [call], run: "echo {{ tasks.call.outputs.val }}"}
          c: {needs: [direct], run: "echo [{{ tasks.direct.outputs.stdout | default('') }}]"}
        """)
    doc = ws.run("m", "--keep-going", rc=1)
    hint = "was skipped, so it has no outputs: `tasks.{0}.outputs.{1} | default('')` reads it as empty)"
    assert task(doc, "a")["error"] == (
        "missions/m.yaml:6:29: undefined name 'tasks.direct.outputs.stdout' (task 'direct' "
        + hint.format("direct", "stdout"))
    assert task(doc, "b")["error"] == (
        "runes/r.yaml:8:8: output 'val' of rune r@1: undefined name 'tasks.maybe.outputs.val' "
        "(task 'maybe' " + hint.format("maybe", "val"))
    assert (task(doc, "c")["status"], task(doc, "c")["outputs"]["stdout"]) == ("succeeded", "[]")
