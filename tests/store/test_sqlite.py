"""The shared SQLite connection: transactions, snapshots, and two writers on one file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from nexusmon.store.sqlite import Connection, upsert_sql, where_equal


@pytest.fixture
def conn(tmp_path: Path) -> Connection:
    c = Connection(tmp_path / "t.db")
    with c.transaction():
        c.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
    return c


def test_the_file_is_in_wal_mode(conn: Connection) -> None:
    assert conn.query("PRAGMA journal_mode") == [("wal",)]


def test_an_inner_transaction_joins_the_outer_one_and_an_error_undoes_both(conn: Connection) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute("INSERT INTO kv VALUES ('a', 1)")
        with conn.transaction():
            conn.execute("INSERT INTO kv VALUES ('b', 2)")
        raise RuntimeError("boom")
    assert conn.query("SELECT count(*) FROM kv") == [(0,)]


def test_upsert_replaces_everything_but_the_key(conn: Connection) -> None:
    sql = upsert_sql("kv", ("k", "v"), ("k",))
    with conn.transaction():
        conn.executemany(sql, [("a", 1), ("a", 2), ("b", 3)])
    assert conn.query("SELECT k, v FROM kv ORDER BY k") == [("a", 2), ("b", 3)]


def test_where_equal_names_only_the_given_values() -> None:
    assert where_equal(run_id=None, task_id=None) == ("", [])
    assert where_equal(run_id="r", task_id=None, kind="k") == ("WHERE run_id = ? AND kind = ?", ["r", "k"])


def test_a_second_writer_waits_for_the_first_instead_of_failing(tmp_path: Path) -> None:
    first, second = Connection(tmp_path / "t.db"), Connection(tmp_path / "t.db")
    with first.transaction():
        first.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
    done = threading.Event()

    def write_second() -> None:
        with second.transaction():
            second.execute("INSERT INTO kv VALUES ('second', 2)")
        done.set()

    with first.transaction():
        first.execute("INSERT INTO kv VALUES ('first', 1)")
        writer = threading.Thread(target=write_second)
        writer.start()
        time.sleep(0.2)
        assert not done.is_set()  # blocked on our write lock, not failed
    writer.join(timeout=10)
    assert done.is_set()
    assert first.query("SELECT k FROM kv ORDER BY v") == [("first",), ("second",)]
    first.close()
    second.close()


def test_a_snapshot_does_not_see_a_later_commit(tmp_path: Path) -> None:
    reader, writer = Connection(tmp_path / "t.db"), Connection(tmp_path / "t.db")
    with writer.transaction():
        writer.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
    with reader.snapshot():
        assert reader.query("SELECT count(*) FROM kv") == [(0,)]
        with writer.transaction():
            writer.execute("INSERT INTO kv VALUES ('a', 1)")
        assert reader.query("SELECT count(*) FROM kv") == [(0,)]
    assert reader.query("SELECT count(*) FROM kv") == [(1,)]
    reader.close()
    writer.close()
