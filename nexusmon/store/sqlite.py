"""One SQLite connection shared by threads: WAL, busy waits and nested transactions.

Several processes may use one database file at once: WAL lets readers and a
writer work together, writers wait up to ``BUSY_TIMEOUT_S`` for each other,
and every write runs in a short ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nexusmon.errors import StateError

BUSY_TIMEOUT_S = 30.0


def select_sql(columns: Sequence[str], table: str) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"


def insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"{insert_sql(table, columns)} ON CONFLICT({', '.join(key)}) DO UPDATE SET {updates}"


def where_equal(**values: str | None) -> tuple[str, list[Any]]:
    """``WHERE a = ? AND b = ?`` for the given non-None values, and their parameters."""
    given = {name: value for name, value in values.items() if value is not None}
    if not given:
        return "", []
    return "WHERE " + " AND ".join(f"{name} = ?" for name in given), list(given.values())


class Connection:
    """A connection in autocommit mode whose writes go through :meth:`transaction`.

    A lock makes it safe to share between threads; transactions nest (an inner
    block joins the outer one).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = _connect(path)
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self.raw.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """The raw connection, held by this thread for the block (for introspection)."""
        with self._lock:
            yield self.raw

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); nested blocks join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield
                self.raw.execute("COMMIT")
            except BaseException:
                if self.raw.in_transaction:
                    self.raw.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: consistent reads that never block writers (WAL)."""
        with self._lock:
            if self._depth:
                yield
                return
            self.raw.execute("BEGIN")
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                self.raw.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a read query."""
        with self._lock:
            return self.raw.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write statement (in the current transaction, if any); rows changed."""
        with self._lock:
            return self.raw.execute(sql, params).rowcount

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        """One write statement per parameter row (in the current transaction, if any)."""
        with self._lock:
            self.raw.executemany(sql, params)

    def _begin(self) -> None:
        try:
            self.raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StateError(f"{self.path}: cannot start a transaction: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{path}: cannot open the ledger: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StateError(f"{path}: cannot open the ledger: {exc}") from exc
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting for another process that is switching or migrating a new file.

    SQLite answers "database is locked" at once here, without its busy handler, while
    another connection holds the lock that the switch needs; so wait as it would.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
