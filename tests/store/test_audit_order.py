"""The audit trail in the order events happened, and a damaged trail reported, never crashed on."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from cli_runner import CliResult

from nexusmon.engine.recorder import Recorder
from nexusmon.errors import StateError
from nexusmon.store.ledger import Ledger
from nexusmon.util.masking import Masker

Cli = Callable[..., CliResult]

# `write` stores an artifact after `greet`'s events were queued; `slow` outlives a batch.
MISSION = """
mission: order
objective: events of tasks and artifacts, in the order they happen
tasks:
  greet:
    run: echo hello
  write:
    needs: [greet]
    run: mkdir -p out && echo one > out/a.txt
    artifacts: [out/a.txt]
  slow:
    needs: [write]
    run: sleep 0.4 && echo two > out/b.txt
    artifacts: [out/b.txt]
"""


@pytest.fixture
def ran(make_workspace: Callable[..., Path], tmp_path: Path, cli: Cli) -> Path:
    """A workspace after one successful run of MISSION."""
    root = make_workspace(tmp_path, {"missions/order.yaml": MISSION})
    result = cli(["run", "order"], root)
    assert result.exit_code == 0, result
    return root


def events(root: Path, cli: Cli) -> list[dict[str, Any]]:
    result = cli(["audit", "--format", "json"], root)
    assert result.exit_code == 0, result
    doc: dict[str, Any] = json.loads(result.stdout)
    return list(doc["events"])


def tamper(root: Path, *statements: str) -> None:
    con = sqlite3.connect(str(root / ".nexusmon" / "ledger.db"))
    try:
        with con:
            for sql in statements:
                con.execute(sql)
    finally:
        con.close()


def task_times(root: Path) -> dict[str, tuple[float, float]]:
    con = sqlite3.connect(str(root / ".nexusmon" / "ledger.db"))
    try:
        return {t: (s, f) for t, s, f in con.execute("SELECT task_id, started_at, finished_at FROM tasks")}
    finally:
        con.close()


# ---------------------------------------------------------------- order and time


def test_each_artifact_is_recorded_between_its_tasks_start_and_end(ran: Path, cli: Cli) -> None:
    trail = [(e["kind"], e["task_id"]) for e in events(ran, cli)]
    assert trail == [
        ("run.started", None),
        ("task.started", "greet"), ("task.succeeded", "greet"),
        ("task.started", "write"), ("artifact.stored", "write"), ("task.succeeded", "write"),
        ("task.started", "slow"), ("artifact.stored", "slow"), ("task.succeeded", "slow"),
        ("run.finished", None),
    ]
    assert cli(["audit", "verify"], ran).exit_code == 0


def test_each_record_is_stamped_when_its_event_happened(ran: Path, cli: Cli) -> None:
    trail = events(ran, cli)
    times = [e["at"] for e in trail]
    assert times == sorted(times), "records are in the order their events happened"
    for task_id, (started_at, finished_at) in task_times(ran).items():
        at = {e["kind"]: e["at"] for e in trail if e["task_id"] == task_id}
        assert at["task.started"] <= started_at, task_id
        assert at["task.succeeded"] >= finished_at, task_id
    slow = {e["kind"]: e["at"] for e in trail if e["task_id"] == "slow"}
    assert slow["artifact.stored"] - slow["task.started"] >= 0.4


def test_a_batched_event_is_written_before_a_later_direct_append(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        recorder = Recorder(ledger, "r1", "m", Masker([]))
        recorder.event("queued", {"n": 1}, "a")
        queued_at = time.time()
        time.sleep(0.02)
        ledger.append_event("direct", {"n": 2}, run_id="r1", task_id="a")
        recorder.event("later", {"n": 3}, "a")
        recorder.flush()
        trail = ledger.events()
        assert [(e.seq, e.kind) for e in trail] == [(1, "queued"), (2, "direct"), (3, "later")]
        assert trail[0].at <= queued_at < trail[1].at <= trail[2].at
        assert ledger.verify_audit() is None


# ---------------------------------------------------------------- a damaged trail


def test_printing_shows_a_record_whose_payload_is_no_longer_json(ran: Path, cli: Cli) -> None:
    tamper(ran, "UPDATE audit SET payload = '{bad' WHERE seq = 2",
           "UPDATE audit SET payload = '[1, 2]' WHERE seq = 3")
    result = cli(["audit"], ran)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 10
    assert lines[1].startswith("     2  ") and "  task.started  " in lines[1]
    assert lines[1].endswith("  greet  unreadable payload (not a JSON object): {bad")
    assert lines[2].endswith("  greet  unreadable payload (not a JSON object): [1, 2]")
    assert result.stderr == ("warning: audit records 2, 3: payload is not a JSON object (edited?); "
                             "run `nexusmon audit verify` to check the chain\n")
    doc = events(ran, cli)[1]
    assert (doc["seq"], doc["payload"], doc["unreadable_payload"]) == (2, None, "{bad")
    verify = cli(["audit", "verify"], ran)
    assert (verify.exit_code, verify.stdout) == (
        1, "audit chain broken: audit record 2: payload is not valid JSON (edited)\n")


@pytest.mark.parametrize(("table", "problem"), [
    ("audit", "table audit (the whole trail) is missing (dropped)"),
    ("audit_head", "the chain head (table audit_head) is missing"),
])
def test_a_dropped_audit_table_is_reported_not_crashed_on(ran: Path, cli: Cli, table: str, problem: str) -> None:
    tamper(ran, f"DROP TABLE {table}")
    assert cli(["audit", "verify"], ran) == (1, f"audit chain broken: {problem}\n", "")
    doc = json.loads(cli(["audit", "verify", "--format", "json"], ran).stdout)
    assert doc["intact"] is False and doc["problems"] == [problem]


def test_printing_without_the_audit_table_says_so(ran: Path, cli: Cli) -> None:
    tamper(ran, "DROP TABLE audit")
    result = cli(["audit"], ran)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: {ran / '.nexusmon' / 'ledger.db'}: cannot read the audit trail: table audit is "
        "missing (dropped); the ledger was changed outside nexusmon (see `nexusmon audit verify`)\n")


def test_a_duplicated_chain_head_row_is_named_as_such(ran: Path, cli: Cli) -> None:
    tamper(ran, "INSERT INTO audit_head SELECT * FROM audit_head")
    assert cli(["audit", "verify"], ran) == (
        1, "audit chain broken: the chain head (table audit_head) has 2 rows instead of one (edited)\n", "")


@pytest.mark.parametrize(("statement", "state"), [
    ("DELETE FROM audit_head", "is missing"),
    ("INSERT INTO audit_head VALUES (1, 'x')", "has 2 different rows"),
])
def test_appending_to_a_trail_without_one_head_is_refused(ran: Path, statement: str, state: str) -> None:
    tamper(ran, statement)
    with Ledger(ran / ".nexusmon") as ledger, pytest.raises(StateError) as info:
        ledger.append_event("late", {})
    assert str(info.value) == (
        f"{ran / '.nexusmon' / 'ledger.db'}: cannot append to the audit trail: the chain head "
        f"(table audit_head) {state}; the ledger was changed outside nexusmon (see `nexusmon audit verify`)")


@pytest.mark.parametrize("statement", ["DROP TABLE audit", "DELETE FROM audit_head"])
def test_a_run_on_a_damaged_trail_fails_with_the_reason_and_never_stays_running(
    ran: Path, cli: Cli, statement: str
) -> None:
    tamper(ran, statement)
    result = cli(["run", "order"], ran)
    assert result.exit_code == 1 and "internal error" not in result.stderr
    assert "the ledger was changed outside nexusmon (see `nexusmon audit verify`)" in result.stderr
    con = sqlite3.connect(str(ran / ".nexusmon" / "ledger.db"))
    try:
        statuses = [row[0] for row in con.execute("SELECT status FROM runs ORDER BY run_id")]
    finally:
        con.close()
    assert statuses[0] == "succeeded" and "running" not in statuses
