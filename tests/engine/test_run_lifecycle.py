"""A run's lifetime: one driver at a time (the run lock), `gc` around live and resumable
runs, SIGHUP and signals during start-up, and secret values given as inputs."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Workspace, kill_group, statuses

SECRET = "hunter2-value"
OTHER = "sesame"

SLOW = """
mission: slow
objective: two tasks that take a while
tasks:
  a: {run: "echo a >> trace.log; sleep 1.5"}
  b: {run: "echo b >> trace.log; sleep 1.5"}
"""

QUICK = """
mission: quick
objective: done at once
inputs:
  fail: {type: boolean, default: false}
tasks:
  only: {run: "test {{ inputs.fail }} = false"}
"""

GATED = """
mission: gated
objective: held for an approval
tasks:
  ship: {rank: A, run: echo shipping}
"""

HANG = """
mission: hang
objective: a task that waits for a long time
tasks:
  wait: {run: "echo $$ > task.pid; exec sleep 30"}
"""

SECRETS = """
mission: sec
objective: a secret's value given as an input
secrets: [MYSECRET, OTHER]
inputs:
  s: {type: string}
  o: {type: object, default: {}}
tasks:
  show:
    run: echo {{ inputs.s }} >> got.txt; echo {{ inputs.o | tojson }} >> got.txt; test -e go || sleep 30
"""


def big_mission(tasks: int = 1500) -> str:
    return "mission: big\nobjective: many noop tasks\ntasks:\n" + "".join(
        f"  t{i}: {{worker: noop}}\n" for i in range(tasks)
    )


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    workspace.write("missions/slow.yaml", SLOW)
    workspace.write("missions/quick.yaml", QUICK)
    workspace.write("missions/hang.yaml", HANG)
    workspace.write("missions/gated.yaml", GATED)
    yield workspace
    workspace.cleanup()


def wait_for(ws: Workspace, proc: subprocess.Popen[bytes], tag: str, lines: int, rel: str = "trace.log") -> None:
    deadline = time.monotonic() + 30
    while len(ws.lines(rel)) < lines:
        assert time.monotonic() < deadline and proc.poll() is None, ws.output(tag)
        time.sleep(0.01)


def newest_run(ws: Workspace) -> str:
    return str(ws.sql("select run_id from runs order by run_id desc limit 1")[0][0])


def lock_files(ws: Workspace) -> list[str]:
    folder = ws.state / "locks"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (an orphan may take a moment to be reaped)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


# -- one driver per run ----------------------------------------------------------------


def test_resuming_a_run_another_process_drives_fails_at_once(ws: Workspace) -> None:
    proc = ws.popen("run", "slow", tag="first")
    wait_for(ws, proc, "first", 2)
    run_id = newest_run(ws)

    started = time.monotonic()
    second = ws.nx("resume", "last")
    assert time.monotonic() - started < 5
    assert second.rc == 2
    assert second.err == (
        f"error: run {run_id} is being driven by another nexusmon process (pid {proc.pid})\n"
    )
    assert proc.wait(timeout=30) == 0, ws.output("first")
    assert sorted(ws.lines("trace.log")) == ["a", "b"], "a task ran twice"
    assert ws.show()["status"] == "succeeded"
    assert lock_files(ws) == [], "the finished run left its lock file"


def test_after_a_sigkill_exactly_one_of_two_concurrent_resumes_drives_the_run(ws: Workspace) -> None:
    proc = ws.popen("run", "slow", tag="killed")
    wait_for(ws, proc, "killed", 2)
    kill_group(proc.pid)
    proc.wait(timeout=10)
    assert ws.show()["status"] == "running"

    one, two = ws.popen("resume", "last", tag="one"), ws.popen("resume", "last", tag="two")
    codes = sorted([one.wait(timeout=60), two.wait(timeout=60)])
    assert codes == [0, 2], ws.output("one") + ws.output("two")
    loser = "one" if one.returncode == 2 else "two"
    assert "is being driven by another nexusmon process (pid " in ws.output(loser)
    assert collections.Counter(ws.lines("trace.log")) == {"a": 2, "b": 2}, "a task ran three times"
    assert ws.show()["status"] == "succeeded"
    assert lock_files(ws) == []


# -- gc -----------------------------------------------------------------------------


def test_gc_never_removes_a_run_a_live_process_drives(ws: Workspace) -> None:
    assert ws.nx("run", "quick").rc == 0
    proc = ws.popen("run", "slow", tag="live")
    wait_for(ws, proc, "live", 2)
    live = newest_run(ws)

    result = ws.nx("gc", "--keep-runs", "0", "--include-unfinished", "--format", "json")
    assert result.rc == 0, result.err
    runs = result.json()["runs"]
    assert runs["count"] == 1 and live not in runs["run_ids"]
    assert runs["kept_live"] == [live]

    assert proc.wait(timeout=30) == 0, ws.output("live")
    assert "error" not in ws.output("live")
    assert ws.show(live)["status"] == "succeeded"


def test_gc_keeps_runs_that_resume_can_finish_unless_asked(ws: Workspace) -> None:
    assert ws.nx("run", "quick").rc == 0
    assert ws.nx("run", "quick", "-i", "fail=true").rc == 1
    assert ws.nx("run", "gated").rc == 3
    held = newest_run(ws)
    proc = ws.popen("run", "slow", tag="term")
    wait_for(ws, proc, "term", 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 130
    interrupted = newest_run(ws)
    (ws.root / "trace.log").unlink()
    proc = ws.popen("run", "slow", tag="kill")
    wait_for(ws, proc, "kill", 2)
    kill_group(proc.pid)
    proc.wait(timeout=10)
    crashed = newest_run(ws)
    assert ws.nx("run", "quick").rc == 0
    newest = newest_run(ws)

    result = ws.nx("gc", "--keep-runs", "1")
    assert result.rc == 0, result.err
    assert result.out == (
        "removed 0 vault object(s) (0 B), 0 temp file(s) (0 B), 2 run(s); kept 3 unfinished run(s) "
        "that `nexusmon resume` can finish (--include-unfinished removes them)\n"
    )
    left = sorted(r for (r,) in ws.sql("select run_id from runs"))
    assert left == sorted([held, interrupted, crashed, newest])

    assert ws.nx("resume", crashed).rc == 0, "a kept run can still be resumed"
    dry = ws.nx("gc", "--keep-runs", "0", "--include-unfinished", "--dry-run", "--format", "json").json()
    assert sorted(dry["runs"]["run_ids"]) == sorted([held, interrupted, crashed, newest])
    assert ws.nx("gc", "--keep-runs", "0", "--include-unfinished").rc == 0
    assert ws.sql("select count(*) from runs") == [(0,)]
    ws.audit_verify()


def test_gc_keeps_the_old_output_files_of_a_live_run(ws: Workspace) -> None:
    proc = ws.popen("run", "slow", tag="live")
    wait_for(ws, proc, "live", 2)
    live = newest_run(ws)
    tmp = ws.state / "tmp"
    kept, stale = tmp / f"{live}-99.out", tmp / "20200101-000000-000000-dead-1.out"
    for path in (kept, stale):
        path.write_text("k=v\n")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    result = ws.nx("gc", "--format", "json")
    assert result.json()["temp_files"]["paths"] == [f"tmp/{stale.name}"]
    assert kept.exists() and not stale.exists()
    assert proc.wait(timeout=30) == 0, ws.output("live")


# -- SIGHUP -------------------------------------------------------------------------


def test_sighup_interrupts_the_run_and_kills_its_tasks(ws: Workspace) -> None:
    proc = ws.popen("run", "hang", tag="hup")
    wait_for(ws, proc, "hup", 1, rel="task.pid")
    task_pid = int(ws.read("task.pid"))
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=10) == 130, ws.output("hup")
    assert ws.show()["status"] == "interrupted"
    assert statuses(ws.show()) == {"wait": "cancelled"}
    assert gone(task_pid), "the task's process outlived the runner"
    assert lock_files(ws) == []


def test_sighup_is_left_ignored_under_nohup(ws: Workspace) -> None:
    ws.write("missions/nohup.yaml", """
        mission: nohup
        objective: survives a hangup
        tasks:
          a: {run: "echo a >> trace.log; sleep 1"}
        """)
    boot = ("import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
            "os.execv(sys.executable, sys.argv[1:])")
    proc = subprocess.Popen([sys.executable, "-c", boot, *ws.argv("run", "nohup")], cwd=ws.root,
                            env=ws.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    ws.procs.append(proc)
    wait_for(ws, proc, "nohup", 1)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 0
    assert ws.show()["status"] == "succeeded"


@pytest.mark.skipif(not hasattr(os, "openpty") or sys.platform == "win32", reason="needs a pty")
def test_a_closed_terminal_interrupts_the_run(ws: Workspace) -> None:
    """The terminal goes away under the runner (its pty hangs up), as when an ssh session drops."""
    master, slave = os.openpty()
    boot = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
            "os.execv(sys.executable, sys.argv[1:])")
    proc = subprocess.Popen(
        [sys.executable, "-c", boot, *ws.argv("run", "hang")], cwd=ws.root, env=ws.env(),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )
    ws.procs.append(proc)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while not ws.lines("task.pid"):
        assert time.monotonic() < deadline and proc.poll() is None, seen
        if select.select([master], [], [], 0.05)[0]:
            seen += os.read(master, 4096)
    task_pid = int(ws.read("task.pid"))
    os.close(master)
    assert proc.wait(timeout=10) == 130
    assert ws.show()["status"] == "interrupted"
    assert gone(task_pid), "the task's process outlived the runner"


# -- signals during start-up ------------------------------------------------------------


def startup_window(ws: Workspace) -> tuple[float, float]:
    """Seconds from start until `run big` records its run, and until it exits, undisturbed."""
    proc = ws.popen("run", "big", tag="calibrate")
    started, recorded = time.monotonic(), None
    while proc.poll() is None:
        if recorded is None and ws.ledger_file.exists():
            with contextlib.suppress(sqlite3.OperationalError):  # the schema is not there yet
                if ws.sql("select count(*) from runs") != [(0,)]:
                    recorded = time.monotonic() - started
        time.sleep(0.002)
    assert proc.returncode == 0, ws.output("calibrate")
    ended = time.monotonic() - started
    return recorded or ended / 2, ended


def signal_during_startup(ws: Workspace, rng: random.Random, tries: int) -> None:
    """Signal `run big` at random moments around the time it records its run (0.1-0.4 s
    after start on a quiet machine: measured first, so that a busy machine is no different)."""
    ws.write("missions/big.yaml", big_mission())
    recorded, ended = startup_window(ws)
    seen = {r for (r,) in ws.sql("select run_id from runs")}
    for n in range(tries):
        sig = rng.choice([signal.SIGTERM, signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
        proc = ws.popen("run", "big", tag=f"start{n}")
        # Mostly in the moments after the row is written, before tasks are scheduled.
        time.sleep(rng.uniform(recorded * 0.9, (recorded + ended) / 2))
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
        runs = {r: s for r, s in ws.sql("select run_id, status from runs") if r not in seen}
        seen |= set(runs)
        for run_id, status in runs.items():
            assert status != "running", f"{sig.name} after start-up left run {run_id} running (exit {rc})"
            left = ws.sql("select count(*) from tasks where run_id = ? and status in ('pending', 'running')",
                          (run_id,))
            assert left == [(0,)], f"{sig.name}: run {run_id} is {status} with unsettled tasks"
        assert rc in (0, 130, -sig), ws.output(f"start{n}")
    assert lock_files(ws) == []


def test_a_signal_during_startup_never_leaves_a_run_running(ws: Workspace) -> None:
    signal_during_startup(ws, random.Random(4), tries=20)


@pytest.mark.slow
def test_many_signals_during_startup_never_leave_a_run_running(ws: Workspace) -> None:
    signal_during_startup(ws, random.Random(40), tries=100)


# -- secret values as inputs ---------------------------------------------------------------


def test_a_secret_given_as_an_input_is_never_stored_or_printed(ws: Workspace) -> None:
    ws.write("missions/sec.yaml", SECRETS)
    ws.write("go", "")
    env = {"MYSECRET": SECRET, "OTHER": OTHER}
    printed = []
    for args in (["plan", "sec"], ["plan", "sec", "--format", "json"],
                 ["run", "sec", "--dry-run", "--format", "json"], ["run", "sec", "--format", "json"]):
        result = ws.nx(*args, "-i", f"s={SECRET}", env=env)
        assert result.rc == 0, result.err
        printed += [result.out, result.err]
    assert ws.lines("got.txt") == [SECRET, "{}"], "the task did not get the real value"
    for args in (["show", "last", "--format", "json"], ["show", "last"], ["audit"],
                 ["runs", "--format", "json"], ["logs", "last", "show"]):
        printed.append(ws.nx(*args, env=env).out)
    plan = json.loads(printed[2])
    assert plan["inputs"] == {"s": "***", "o": {}}
    assert "echo *** >> got.txt" in plan["tasks"][0]["params"]["run"]
    assert json.loads(printed[6])["inputs"] == {"s": "***", "o": {}}
    assert [text for text in printed if SECRET in text] == []
    assert SECRET.encode() not in ws.state_bytes()


def test_resume_gives_a_secret_input_its_value_back(ws: Workspace) -> None:
    ws.write("missions/sec.yaml", SECRETS)
    ws.write("in.yaml", f'{{s: "a {SECRET} *** {OTHER}!", o: {{"k-{OTHER}": "x {SECRET}"}}}}\n')
    env = {"MYSECRET": SECRET, "OTHER": OTHER}
    proc = ws.popen("run", "sec", "--inputs-file", "in.yaml", tag="sec", env=env)
    wait_for(ws, proc, "sec", 2, rel="got.txt")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 130, ws.output("sec")
    given = ws.lines("got.txt")
    assert given == [f"a {SECRET} *** {OTHER}!", json.dumps({f"k-{OTHER}": f"x {SECRET}"})]

    missing = ws.nx("resume", "last", env={"OTHER": OTHER})
    assert missing.rc == 2
    ws.write("go", "")
    resumed = ws.nx("resume", "last", "--format", "json", env=env)
    assert resumed.rc == 0, resumed.err
    assert ws.lines("got.txt") == given + given, "resume ran with other input values"
    assert resumed.json()["inputs"] == {"s": "a *** *** ***!", "o": {"k-***": "x ***"}}
    assert SECRET.encode() not in ws.state_bytes() and OTHER.encode() not in ws.state_bytes()


def test_a_failed_task_removed_from_the_mission_is_cancelled_on_resume(ws: Workspace) -> None:
    ws.write("missions/r.yaml", """
        mission: r
        objective: resume after an edit
        tasks:
          a: {run: echo a}
          b: {needs: [a], run: exit 1}
          c: {needs: [b], run: echo c}
        """)
    first = ws.run("r", rc=1)
    ws.write("missions/r.yaml", """
        mission: r
        objective: resume after an edit
        tasks:
          a: {run: echo a}
          c: {needs: [a], run: echo c}
        """)
    resumed = ws.nx("resume", first["run_id"], "--format", "json")
    assert resumed.rc == 0, resumed.err
    doc = resumed.json()
    assert doc["status"] == "succeeded"
    by_id = {t["id"]: (t["status"], t["error"]) for t in doc["tasks"]}
    assert by_id == {"a": ("succeeded", None), "b": ("cancelled", "not in the mission file any more"),
                     "c": ("succeeded", None)}
    ws.audit_verify()


def test_resume_keeps_the_flags_the_run_was_started_with(ws: Workspace) -> None:
    ws.write("missions/kg.yaml", """
        mission: kg
        objective: keep going, then resume
        tasks:
          gate: {run: test -f ok.txt}
          after: {needs: [gate], run: echo after >> trace.log, cache: true}
          other: {run: echo other >> trace.log}
        """)
    ws.write("ok.txt", "")
    ws.run("kg")  # fills the cache for `after`
    (ws.root / "ok.txt").unlink()
    first = ws.run("kg", "--keep-going", "--no-cache", "--concurrency", "1", rc=1)
    assert statuses(first) == {"gate": "failed", "after": "cancelled", "other": "succeeded"}
    assert first["options"] == {"keep_going": True, "use_cache": False, "concurrency": 1}
    ws.write("ok.txt", "")
    resumed = ws.nx("resume", first["run_id"], "--format", "json")
    assert resumed.rc == 0, resumed.err
    assert resumed.json()["options"] == {"keep_going": True, "use_cache": False, "concurrency": 1}
    assert statuses(resumed.json()) == {"gate": "succeeded", "after": "succeeded", "other": "succeeded"}
    assert ws.lines("trace.log").count("after") == 2, "resume took the cached result despite --no-cache"


def test_a_flag_given_to_resume_adds_to_the_recorded_ones(ws: Workspace) -> None:
    ws.write("missions/kg.yaml", """
        mission: kg
        objective: fail fast, then resume with keep-going
        tasks:
          gate: {run: test -f ok.txt}
          later: {needs: [gate], run: "false"}
          other: {run: echo other >> trace.log}
        """)
    first = ws.run("kg", "--concurrency", "1", rc=1)
    assert first["options"]["keep_going"] is False
    ws.write("ok.txt", "")
    resumed = ws.nx("resume", first["run_id"], "--keep-going", "--format", "json")
    assert resumed.rc == 1
    assert resumed.json()["options"]["keep_going"] is True


def test_resume_of_a_succeeded_run_leaves_its_record_alone(ws: Workspace) -> None:
    ws.write("missions/done.yaml", """
        mission: done
        objective: finish once
        tasks:
          a: {run: echo a >> trace.log}
        """)
    first = ws.run("done")
    events = ws.nx("audit", "--format", "json").json()["events"]
    resumed = ws.nx("resume", first["run_id"], "--format", "json")
    assert resumed.rc == 0, resumed.err
    assert resumed.err == f"warning: run {first['run_id']} already succeeded; there is nothing to resume\n"
    assert resumed.json() == first
    assert ws.nx("show", first["run_id"], "--format", "json").json() == first
    assert ws.nx("audit", "--format", "json").json()["events"] == events
    assert ws.lines("trace.log") == ["a"]
