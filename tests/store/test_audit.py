from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nexusmon.store import audit
from nexusmon.store.ledger import Ledger

WRITER = """
import sys
from pathlib import Path
from nexusmon.store.ledger import Ledger
with Ledger(Path(sys.argv[1])) as ledger:
    for i in range(int(sys.argv[3])):
        if i % 2:
            ledger.append_event("tick", {"writer": sys.argv[2], "i": i}, run_id=sys.argv[2])
        else:
            ledger.save_tasks([], [("tick", sys.argv[2], None, {"writer": sys.argv[2], "i": i})])
"""


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A ledger holding a chain of six events, closed so tests can tamper with it."""
    with Ledger(tmp_path) as ledger:
        for i in range(1, 7):
            ledger.append_event(f"kind{i}", {"n": i, "text": "é✓"}, run_id="r1", task_id=f"t{i}")
    return tmp_path


def tamper(state: Path, *statements: tuple[str, tuple]) -> None:
    con = sqlite3.connect(str(state / "ledger.db"))
    try:
        with con:
            for sql, params in statements:
                con.execute(sql, params)
    finally:
        con.close()


def verify(state: Path) -> audit.AuditProblem | None:
    with Ledger(state) as ledger:
        return ledger.verify_audit()


def test_an_untouched_chain_verifies_and_links_each_record(state: Path) -> None:
    with Ledger(state) as ledger:
        assert ledger.verify_audit() is None
        events = ledger.events()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))
    assert events[2].payload == {"n": 3, "text": "é✓"}


def test_hash_is_sha256_of_prev_hash_and_canonical_record() -> None:
    body = ('{"at":1.5,"kind":"k","payload":{"a":"é","b":[1,2]},"run_id":"r","seq":1,'
            '"task_id":null}')
    expected = hashlib.sha256(("0" * 64 + body).encode()).hexdigest()
    assert audit.record_hash("0" * 64, 1, 1.5, "k", "r", None, {"b": [1, 2], "a": "é"}) == expected


def test_edited_payload_is_found(state: Path) -> None:
    tamper(state, ("UPDATE audit SET payload = ? WHERE seq = 3", ('{"n":33,"text":"é✓"}',)))
    problem = verify(state)
    assert (problem.seq, problem.reason) == (3, "contents do not match the record's hash (edited)")
    assert str(problem) == "audit record 3: contents do not match the record's hash (edited)"


def test_edited_kind_and_time_are_found(state: Path) -> None:
    tamper(state, ("UPDATE audit SET kind = 'approved' WHERE seq = 4", ()))
    assert verify(state).seq == 4
    tamper(state, ("UPDATE audit SET at = at + 1 WHERE seq = 2", ()))
    assert verify(state).seq == 2


def test_payload_that_is_no_longer_json_is_found(state: Path) -> None:
    tamper(state, ("UPDATE audit SET payload = 'oops{' WHERE seq = 5", ()))
    assert verify(state) == audit.AuditProblem(5, "payload is not valid JSON (edited)")


def test_removed_middle_record_is_found(state: Path) -> None:
    tamper(state, ("DELETE FROM audit WHERE seq = 3", ()))
    assert verify(state) == audit.AuditProblem(3, "record 3 is missing (removed)")


def test_removed_first_records_are_found(state: Path) -> None:
    tamper(state, ("DELETE FROM audit WHERE seq <= 2", ()))
    assert verify(state) == audit.AuditProblem(1, "records 1 to 2 are missing (removed)")


def test_removed_last_record_is_found_through_the_chain_head(state: Path) -> None:
    tamper(state, ("DELETE FROM audit WHERE seq = 6", ()))
    assert verify(state) == audit.AuditProblem(6, "record 6 is missing (removed)")


def test_truncation_stays_visible_after_new_appends(state: Path) -> None:
    tamper(state, ("DELETE FROM audit WHERE seq >= 5", ()))
    with Ledger(state) as ledger:
        assert ledger.append_event("later", {}).seq == 7
        assert ledger.verify_audit() == audit.AuditProblem(5, "records 5 to 6 are missing (removed)")


def test_removed_chain_head_is_found(state: Path) -> None:
    tamper(state, ("DELETE FROM audit_head", ()))
    assert verify(state).reason == "the chain head (table audit_head) is missing"


def test_renumbered_records_are_found(state: Path) -> None:
    """Deleting a record and shifting the later ones down leaves no seq gap."""
    tamper(state, ("DELETE FROM audit WHERE seq = 3", ()),
           ("UPDATE audit SET seq = seq - 1 WHERE seq > 3", ()),
           ("UPDATE audit_head SET seq = 5", ()))
    assert verify(state).seq == 3


def test_swapped_records_are_found(state: Path) -> None:
    columns = "at, kind, run_id, task_id, payload, prev_hash, hash"
    con = sqlite3.connect(str(state / "ledger.db"))
    try:
        two = con.execute(f"SELECT {columns} FROM audit WHERE seq = 2").fetchone()
        four = con.execute(f"SELECT {columns} FROM audit WHERE seq = 4").fetchone()
        sets = ", ".join(f"{c} = ?" for c in columns.split(", "))
        with con:
            con.execute(f"UPDATE audit SET {sets} WHERE seq = 2", four)
            con.execute(f"UPDATE audit SET {sets} WHERE seq = 4", two)
    finally:
        con.close()
    problem = verify(state)
    assert problem.seq == 2
    assert "removed or reordered" in problem.reason


def test_events_of_one_run_and_newest_limit(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        for i in range(5):
            ledger.append_event("e", {"i": i}, run_id="a" if i % 2 else "b")
        assert [e.payload["i"] for e in ledger.events(run_id="a")] == [1, 3]
        assert [e.seq for e in ledger.events(limit=2)] == [4, 5]


def test_two_processes_appending_at_once_build_one_chain(tmp_path: Path) -> None:
    """Both writers open a fresh ledger (racing on migrations too) and interleave appends."""
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, "150"],
                         stderr=subprocess.PIPE, text=True)
        for name in ("one", "two")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with Ledger(tmp_path) as ledger:
        events = ledger.events()
        assert ledger.verify_audit() is None
        assert ledger.schema_versions() == [1, 2]
    assert [e.seq for e in events] == list(range(1, 301))
    for name in ("one", "two"):
        assert sorted(e.payload["i"] for e in events if e.payload["writer"] == name) == list(range(150))
