from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from nexusmon.errors import StateError
from nexusmon.spec.model import Decision, Rank, TaskStatus
from nexusmon.store.ids import new_run_id
from nexusmon.store.ledger import Ledger
from nexusmon.store.migrations import MIGRATIONS
from nexusmon.store.records import ApprovalRow, CacheRow, RunRow, TaskRow
from nexusmon.store.runtables import AmbiguousRun


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger(tmp_path / "state") as opened:
        yield opened


def make_run(run_id: str, mission: str = "deploy", status: str = "running") -> RunRow:
    return RunRow(run_id=run_id, mission=mission, status=status, started_at=1.0,
                  inputs={"tag": "v1"}, mission_file=f"missions/{mission}.yaml")


def raw(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(str(path))
    try:
        with con:
            return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_creates_state_dir_and_wal_sqlite_file(tmp_path: Path) -> None:
    with Ledger(tmp_path / "a" / "b") as ledger:
        assert ledger.path == tmp_path / "a" / "b" / "ledger.db"
        assert ledger.query("PRAGMA journal_mode")[0][0] == "wal"
        assert ledger.integrity_check() == []
    assert ledger.path.read_bytes()[:16] == b"SQLite format 3\x00"
    tables = {row[0] for row in raw(ledger.path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "tasks", "logs", "cache", "artifacts", "reviews", "approvals", "omens",
            "audit", "audit_head", "migrations"} <= tables


def test_migrations_are_applied_once_and_data_survives_reopen(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        ledger.create_run(make_run("r1"))
    with Ledger(tmp_path) as ledger:
        assert ledger.schema_versions() == [1, 2]
        assert ledger.get_run("r1") == make_run("r1")
    assert raw(tmp_path / "ledger.db", "SELECT count(*) FROM migrations") == [(2,)]


def test_a_ledger_of_the_first_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    con = sqlite3.connect(str(tmp_path / "ledger.db"))
    with con:
        con.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
        MIGRATIONS[0][1](con)
        con.execute("INSERT INTO migrations VALUES (1, 0)")
        con.execute("INSERT INTO runs (run_id, mission, status, inputs) VALUES ('r0', 'old', 'failed', '{}')")
    con.close()
    with Ledger(tmp_path) as ledger:
        assert ledger.schema_versions() == [1, 2]
        old = ledger.get_run("r0")
        assert old is not None and old.options == {} and old.status == "failed"
        assert ledger.schema_drift() == []


def test_ledger_from_a_newer_nexusmon_is_refused(tmp_path: Path) -> None:
    Ledger(tmp_path).close()
    raw(tmp_path / "ledger.db", "INSERT INTO migrations VALUES (99, 0)")
    with pytest.raises(StateError, match="schema version 99 was written by a newer nexusmon"):
        Ledger(tmp_path)


def test_a_file_that_is_not_sqlite_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot open the ledger"):
        Ledger(tmp_path)


def test_run_ids_sort_in_creation_order_and_are_unique() -> None:
    ids = [new_run_id() for _ in range(3000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"\d{8}-\d{6}-\d{6}-[0-9a-f]{4}", i) for i in ids)


def test_get_run_by_id_last_and_unique_prefix(ledger: Ledger) -> None:
    for run_id in ("20260101-000000-000001-aaaa", "20260101-000000-000002-bbbb",
                   "20260102-000000-000001-cccc"):
        ledger.create_run(make_run(run_id))
    assert ledger.get_run("last").run_id == "20260102-000000-000001-cccc"
    assert ledger.get_run("20260101-000000-000002").run_id == "20260101-000000-000002-bbbb"
    assert ledger.get_run("20260101-000000-000001-aaaa").run_id == "20260101-000000-000001-aaaa"
    assert ledger.get_run("2027") is None
    with pytest.raises(AmbiguousRun, match="run id prefix '20260101' matches several runs"):
        ledger.get_run("20260101")


def test_last_is_none_in_an_empty_ledger(ledger: Ledger) -> None:
    assert ledger.get_run("last") is None
    assert ledger.list_runs() == []


def test_list_runs_newest_first_per_mission_and_counts(ledger: Ledger) -> None:
    ids = [new_run_id() for _ in range(4)]
    for i, run_id in enumerate(ids):
        ledger.create_run(make_run(run_id, mission="a" if i % 2 else "b"))
    ledger.update_run(ids[0], status="succeeded", finished_at=5.0)
    ledger.update_run(ids[1], status="succeeded", finished_at=6.0)
    assert [r.run_id for r in ledger.list_runs()] == ids[::-1]
    assert [r.run_id for r in ledger.list_runs(limit=2)] == ids[:1:-1]
    assert [r.run_id for r in ledger.list_runs(mission="a")] == [ids[3], ids[1]]
    assert ledger.count_runs("succeeded") == 2
    assert ledger.count_runs("running") == 2


def test_update_run_sets_and_clears_the_end(ledger: Ledger) -> None:
    ledger.create_run(make_run("r1"))
    ledger.update_run("r1", status="failed", finished_at=9.5, error="boom")
    run = ledger.get_run("r1")
    assert (run.status, run.finished_at, run.error) == ("failed", 9.5, "boom")
    ledger.update_run("r1", status="running")
    run = ledger.get_run("r1")
    assert (run.status, run.finished_at, run.error) == ("running", None, None)
    with pytest.raises(StateError, match="no run nope"):
        ledger.update_run("nope", status="failed")


def test_duplicate_run_id_is_refused(ledger: Ledger) -> None:
    ledger.create_run(make_run("r1"))
    with pytest.raises(StateError, match="run r1 already exists"):
        ledger.create_run(make_run("r1"))


def test_save_tasks_upserts_in_first_seen_order_with_audit_events(ledger: Ledger) -> None:
    ledger.create_run(make_run("r1"))
    ledger.save_tasks(
        [TaskRow("r1", t, "pending") for t in ("build", "test", "ship")],
        [("task.start", "r1", "build", {"attempt": 1})],
    )
    done = TaskRow(
        "r1", "test", TaskStatus.SUCCEEDED, rank=Rank.D, decision=Decision.AUTO,
        reasons=("policy x",), attempts=2, duration_s=0.5, outputs={"stdout": "ok"},
        artifacts=({"path": "dist/a", "version": 1, "digest": "sha256:00"},), cost_usd=0.25,
    )
    ledger.save_tasks([done], [("task.end", "r1", "test", {"status": "succeeded"})])
    rows = ledger.task_rows("r1")
    assert [r.task_id for r in rows] == ["build", "test", "ship"]
    assert rows[1] == TaskRow(
        "r1", "test", "succeeded", rank="D", decision="auto", reasons=("policy x",), attempts=2,
        duration_s=0.5, outputs={"stdout": "ok"},
        artifacts=({"path": "dist/a", "version": 1, "digest": "sha256:00"},), cost_usd=0.25,
    )
    assert [(e.seq, e.kind, e.task_id) for e in ledger.events("r1")] == [
        (1, "task.start", "build"), (2, "task.end", "test")]
    assert ledger.verify_audit() is None


def test_save_tasks_is_all_or_nothing(ledger: Ledger) -> None:
    ledger.create_run(make_run("r1"))
    with pytest.raises(sqlite3.IntegrityError):
        ledger.save_tasks([TaskRow("r1", "a", "running")], [(None, "r1", "a", {})])  # type: ignore[list-item]
    assert ledger.task_rows("r1") == []
    assert ledger.events() == []


def test_transaction_rolls_back_everything_and_nests(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.transaction():
        ledger.create_run(make_run("r1"))
        with ledger.transaction():
            ledger.append_event("run.start", {}, run_id="r1")
        raise RuntimeError("crash")
    assert ledger.get_run("r1") is None
    assert ledger.events() == []
    with ledger.transaction():
        ledger.create_run(make_run("r2"))
        ledger.append_event("run.start", {}, run_id="r2")
    assert ledger.get_run("r2") is not None and len(ledger.events()) == 1


def test_logs_per_attempt(ledger: Ledger) -> None:
    ledger.append_log("r1", "t", 1, "hello ")
    ledger.append_log("r1", "t", 1, "world\n")
    assert ledger.logs("r1", "t") == "hello world\n"
    ledger.append_log("r1", "t", 2, "again")
    assert ledger.logs("r1", "t") == "--- attempt 1 ---\nhello world\n--- attempt 2 ---\nagain\n"
    assert ledger.logs("r1", "other") == ""


def test_cache_round_trip_and_replace(ledger: Ledger) -> None:
    assert ledger.cache_get("fp1") is None
    row = CacheRow("fp1", "m", "t", "r1", {"stdout": "x", "n": 1},
                   ({"path": "a", "version": 1, "digest": "sha256:ab"},), 3.0)
    ledger.cache_put(row)
    assert ledger.cache_get("fp1") == row
    newer = CacheRow("fp1", "m", "t", "r2", {"stdout": "y"}, (), 4.0)
    ledger.cache_put(newer)
    assert ledger.cache_get("fp1") == newer


def test_approvals_filtered_by_run_and_task(ledger: Ledger) -> None:
    def approval(run: str, task: str, verdict: str = "approve") -> ApprovalRow:
        return ApprovalRow(run, task, "m", "sha256:plan", verdict, "alice", "ed25519:k", "A", "sig",
                           "2026-11-21T10:00:00Z", "ok")
    for row in (approval("r1", "a"), approval("r1", "b", "reject"), approval("r2", "a")):
        ledger.add_approval(row)
    assert [(a.run_id, a.task_id, a.verdict) for a in ledger.approvals()] == [
        ("r1", "a", "approve"), ("r1", "b", "reject"), ("r2", "a", "approve")]
    assert [a.id for a in ledger.approvals(run_id="r1")] == [1, 2]
    only = ledger.approvals(run_id="r1", task_id="b")
    assert only == [ApprovalRow("r1", "b", "m", "sha256:plan", "reject", "alice", "ed25519:k", "A",
                                "sig", "2026-11-21T10:00:00Z", "ok", id=2)]


def test_omens_bump_list_and_clear(ledger: Ledger) -> None:
    assert [ledger.bump_omen("m", "t", "exit_code") for _ in range(3)] == [1, 2, 3]
    assert ledger.bump_omen("m", "t", "timeout") == 1
    assert ledger.bump_omen("other", "t", "exit_code") == 1
    assert [(o.mission, o.task_id, o.kind, o.count) for o in ledger.omens("m")] == [
        ("m", "t", "exit_code", 3), ("m", "t", "timeout", 1)]
    assert ledger.clear_omens("m", "t") == 2
    assert [o.mission for o in ledger.omens()] == ["other"]
    assert ledger.clear_omens() == 1
    assert ledger.bump_omen("m", "t", "exit_code") == 1
