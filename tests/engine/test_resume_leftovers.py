"""`resume` after a SIGKILLed runner first stops the task processes that runner left running
(tasks live in sessions of their own and outlive it), so no task runs twice at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexusmon.util.leftovers import stop_leftovers

from .helpers import Workspace, kill_group, statuses

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# The first attempt sleeps (with a grandchild, and one that left for a session of its own:
# out of reach of a signal to the task's group); the attempt of the resume writes down which
# processes of the first one still run (a zombie does not), then ends.
SLEEPY = """
    mission: sleepy
    objective: leaves processes behind when its runner dies
    tasks:
      build:
        run: |
          if [ -e second ]; then
            for p in $(cat pids); do
              state=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null || true)
              if [ -n "$state" ] && [ "$state" != Z ]; then echo "still running: $p" >> trace.log; fi
            done
            echo rerun >> trace.log
            exit 0
          fi
          touch second
          setsid sleep 300 &
          escaped=$!
          sleep 300 &
          echo "$$ $! $escaped" > pids.partial && mv pids.partial pids
          wait
    """


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    workspace.write("missions/sleepy.yaml", SLEEPY)
    yield workspace
    workspace.cleanup()
    for pid in pids_of(workspace):
        kill_group(pid)


def pids_of(ws: Workspace) -> list[int]:
    return [int(p) for p in ws.read("pids").split()] if ws.exists("pids") else []


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def wait_for(path: Path, proc: subprocess.Popen[bytes], ws: Workspace) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, ws.output("bg")
        time.sleep(0.02)


def killed_mid_run(ws: Workspace) -> list[int]:
    """`run sleepy` SIGKILLed while its task sleeps: the pids of the task's shell and its two sleeps."""
    proc = ws.popen("run", "sleepy")
    wait_for(ws.root / "pids", proc, ws)
    proc.kill()  # the runner alone: its task lives in a session of its own
    proc.wait(timeout=10)
    pids = pids_of(ws)
    assert len(pids) == 3 and all(alive(p) for p in pids), "the task did not outlive its runner"
    return pids


def test_resume_stops_what_the_killed_runner_left_before_running_the_task_again(ws: Workspace) -> None:
    pids = killed_mid_run(ws)
    started = time.monotonic()
    result = ws.nx("resume", "last", "--format", "json")
    assert result.rc == 0, result.err
    assert time.monotonic() - started < 10
    doc = result.json()
    assert statuses(doc) == {"build": "succeeded"}
    assert ws.lines("trace.log") == ["rerun"]
    assert not any(alive(p) for p in pids), "the first copy of the task still runs"
    warning = (f"warning: stopped 3 processes left running by run {doc['run_id']} "
               f"(task 'build': pids {', '.join(map(str, sorted(pids)))})")
    assert warning in result.err.splitlines(), result.err
    events = ws.sql("SELECT payload FROM audit WHERE kind = 'run.leftovers_stopped'")
    assert [json.loads(p) for (p,) in events] == [{"mission": "sleepy", "processes": [
        {"pid": pid, "task": "build"} for pid in sorted(pids)]}]
    ws.audit_verify()


def test_processes_of_other_runs_are_left_alone(ws: Workspace) -> None:
    pids = killed_mid_run(ws)
    [(run_id,)] = ws.sql("SELECT run_id FROM runs")
    others = [subprocess.Popen(["sleep", "300"], start_new_session=True,
                               env={**ws.env(), "NEXUSMON_RUN_ID": other, "NEXUSMON_TASK_ID": "build"})
              for other in (f"{run_id}0", "20990101-000000-000000-0000")]
    try:
        result = ws.nx("resume", "last")
        assert result.rc == 0, result.err
        assert [p.poll() for p in others] == [None, None], "a process of another run was stopped"
        assert not any(alive(p) for p in pids)
        assert "stopped 3 processes" in result.err
    finally:
        for proc in others:
            proc.kill()
            proc.wait(timeout=10)


def test_a_resume_with_nothing_left_running_says_nothing(ws: Workspace) -> None:
    killed_mid_run(ws)
    for pid in pids_of(ws):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids_of(ws)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    result = ws.nx("resume", "last")
    assert result.rc == 0, result.err
    assert "stopped" not in result.err
    assert ws.sql("SELECT count(*) FROM audit WHERE kind = 'run.leftovers_stopped'") == [(0,)]


# -- the stopping itself, with real processes ---------------------------------------------


def started_for(run_id: str, script: str, tmp_path: Path, own_session: bool = True) -> subprocess.Popen[bytes]:
    """``bash -c SCRIPT`` as a process of ``run_id``, once it wrote ``ready``."""
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(["bash", "-c", f"{script}; touch {ready}; exec sleep 300"],
                            start_new_session=own_session,
                            env={**os.environ, "NEXUSMON_RUN_ID": run_id, "NEXUSMON_TASK_ID": "t"})
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    return proc


def test_what_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    proc = started_for("run-a", "trap '' TERM", tmp_path)
    try:
        started = time.monotonic()
        assert [lo.pid for lo in stop_leftovers("run-a", grace=0.3)] == [proc.pid]
        assert time.monotonic() - started >= 0.3
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        kill_group(proc.pid)


def test_a_leftover_in_our_own_process_group_is_stopped_alone(tmp_path: Path) -> None:
    proc = started_for("run-b", ":", tmp_path, own_session=False)  # a signal to its group would reach us
    try:
        assert [lo.pid for lo in stop_leftovers("run-b")] == [proc.pid]
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()


def test_this_process_and_its_ancestors_are_never_stopped() -> None:
    # A shell of run-c (say a task's) runs a command that stops run-c's leftovers.
    code = "from nexusmon.util.leftovers import stop_leftovers; print(stop_leftovers('run-c'))"
    done = subprocess.run(["bash", "-c", f"{sys.executable} -c \"{code}\"; echo shell survived"],
                          env={**os.environ, "NEXUSMON_RUN_ID": "run-c"}, capture_output=True,
                          text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (0, "[]\nshell survived\n"), done.stderr
