"""Durability: a runner killed at any moment leaves a consistent ledger and vault, and
`nexusmon resume` finishes the run without re-running what had succeeded."""

from __future__ import annotations

import collections
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexusmon.store.ledger import Ledger
from nexusmon.store.vault import Vault

from .helpers import Workspace, kill_group, statuses

TASKS = 12
CHAINS = 3
STEP = "echo {tid} >> trace.log; sleep 0.15; mkdir -p out; echo {tid} > out/{tid}.txt"


def crash_mission() -> str:
    """Three chains of four short tasks; every third task stores an artifact."""
    lines = [
        "mission: crashy",
        "objective: survive SIGKILL",
        "constraints: {concurrency: 3}",
        "tasks:",
    ]
    for i in range(TASKS):
        tid = f"t{i:02d}"
        lines.append(f"  {tid}:")
        if i >= CHAINS:
            lines.append(f"    needs: [t{i - CHAINS:02d}]")
        if i % 3 == 0:
            lines.append(f"    artifacts: [out/{tid}.txt]")
        lines.append("    run: " + STEP.format(tid=tid))
    return "\n".join(lines) + "\n"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    workspace.write("missions/crashy.yaml", crash_mission())
    yield workspace
    workspace.cleanup()


def recorded(ws: Workspace) -> dict[str, str]:
    """Task statuses of the newest run as the ledger holds them."""
    rows = ws.sql(
        "select task_id, status from tasks where run_id = "
        "(select run_id from runs order by run_id desc limit 1)"
    )
    return dict(rows)


def assert_consistent(ws: Workspace) -> None:
    assert ws.sql("PRAGMA integrity_check") == [("ok",)]
    with Ledger(ws.state) as ledger:
        assert ledger.verify_audit() is None
        vault = Vault(ledger, ws.root)
        for path, version in ws.sql("select path, version from artifacts"):
            assert vault.read(vault.get(path, version)) == f"{Path(path).stem}\n".encode()


def kill_after(ws: Workspace, started: int, rng: random.Random) -> None:
    """SIGKILL the runner's process group once ``started`` tasks began, plus a random pause."""
    proc = ws.popen("run", "crashy", tag="crash")
    deadline = time.monotonic() + 30
    while len(ws.lines("trace.log")) < started and proc.poll() is None:
        assert time.monotonic() < deadline, ws.output("crash")
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.08))
    kill_group(proc.pid)
    proc.wait(timeout=10)
    time.sleep(0.1)  # task processes live in their own sessions: let the orphans end


def crash_and_resume(ws: Workspace, started: int, rng: random.Random) -> None:
    kill_after(ws, started, rng)
    before = recorded(ws)
    assert before, "the run was not recorded before the kill"
    assert_consistent(ws)
    ws.audit_verify()

    result = ws.nx("resume", "last", "--format", "json")
    assert result.rc == 0, result.err
    doc = result.json()
    assert doc["status"] == "succeeded"
    assert set(statuses(doc).values()) == {"succeeded"}
    runs = collections.Counter(ws.lines("trace.log"))
    assert set(runs) == {f"t{i:02d}" for i in range(TASKS)}
    again = {t: runs[t] for t, status in before.items() if status == "succeeded" and runs[t] != 1}
    assert not again, f"tasks recorded as succeeded before the kill ran again: {again}"
    assert_consistent(ws)


@pytest.mark.parametrize("started", [2, 5, 8, 11])
def test_sigkill_at_a_random_moment_then_resume(ws: Workspace, started: int) -> None:
    crash_and_resume(ws, started, random.Random(started))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 130))
def test_sigkill_at_many_random_moments_then_resume(ws: Workspace, seed: int) -> None:
    rng = random.Random(seed)
    crash_and_resume(ws, rng.randint(1, TASKS - 1), rng)


def test_sigterm_interrupts_the_run_and_resume_finishes_it(ws: Workspace) -> None:
    ws.write(
        "missions/long.yaml",
        """
        mission: long
        objective: interrupted politely
        tasks:
          first: {run: "echo first >> trace.log"}
          slow:
            needs: [first]
            run: echo slow >> trace.log; test -e fast || sleep 5; touch slow-done.txt
          last: {needs: [slow], run: "echo last >> trace.log"}
        """,
    )
    proc = ws.popen("run", "long", tag="term")
    deadline = time.monotonic() + 30
    while "slow" not in ws.lines("trace.log"):
        assert time.monotonic() < deadline and proc.poll() is None, ws.output("term")
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 130, ws.output("term")
    assert recorded(ws) == {"first": "succeeded", "slow": "cancelled", "last": "cancelled"}
    assert ws.show()["status"] == "interrupted"
    time.sleep(0.2)
    assert not ws.exists("slow-done.txt"), "the interrupted task was left running"

    ws.write("fast", "")
    resumed = ws.nx("resume", "last", "--format", "json")
    assert resumed.rc == 0, resumed.err
    assert statuses(resumed.json()) == {
        "first": "succeeded",
        "slow": "succeeded",
        "last": "succeeded",
    }
    assert ws.lines("trace.log") == ["first", "slow", "slow", "last"]


def test_a_finished_task_is_recorded_while_a_long_dependent_runs(ws: Workspace) -> None:
    ws.write(
        "missions/pair.yaml",
        """
        mission: pair
        objective: a quick task, then a long one
        tasks:
          quick: {run: "echo quick >> trace.log"}
          long: {needs: [quick], run: "echo long >> trace.log; sleep 2"}
        """,
    )
    proc = ws.popen("run", "pair", tag="pair")
    deadline = time.monotonic() + 30
    while "long" not in ws.lines("trace.log"):
        assert time.monotonic() < deadline and proc.poll() is None, ws.output("pair")
        time.sleep(0.01)
    time.sleep(0.5)
    assert statuses(ws.show()) == {"quick": "succeeded", "long": "running"}
    kill_group(proc.pid)
    proc.wait(timeout=10)
    ws.write("missions/pair.yaml", ws.read("missions/pair.yaml").replace("sleep 2", "true"))
    assert ws.nx("resume", "last").rc == 0
    assert ws.lines("trace.log") == ["quick", "long", "long"], "the succeeded task ran again"


def test_quick_tasks_killed_mid_chain_are_not_run_again(tmp_path: Path) -> None:
    """A task that ran is durable before the next one starts, however quick it was."""
    ws = Workspace(tmp_path)
    try:
        lines = ["mission: quick", "objective: a chain of quick tasks", "tasks:"]
        for i in range(80):
            needs = f", needs: [q{i - 1:02d}]" if i else ""
            lines.append(f"  q{i:02d}: {{run: 'echo q{i:02d} >> trace.log'{needs}}}")
        ws.write("missions/quick.yaml", "\n".join(lines) + "\n")
        proc = ws.popen("run", "quick", tag="quick")
        deadline = time.monotonic() + 30
        while len(ws.lines("trace.log")) < 30 and proc.poll() is None:
            assert time.monotonic() < deadline, ws.output("quick")
            time.sleep(0.002)
        kill_group(proc.pid)
        proc.wait(timeout=10)
        time.sleep(0.1)
        result = ws.nx("resume", "last", "--format", "json")
        assert result.rc == 0, result.err
        runs = collections.Counter(ws.lines("trace.log"))
        assert set(runs) == {f"q{i:02d}" for i in range(80)}
        twice = sorted(t for t, n in runs.items() if n > 1)
        assert len(twice) <= 1, f"ran again after the kill: {twice}"  # at most the one running then
    finally:
        ws.cleanup()
