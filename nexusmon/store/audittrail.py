"""The ledger's audit trail: batched and direct appends to the hash chain, reads, verification.

The chain's hashing and checking live in :mod:`nexusmon.store.audit`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

from nexusmon.errors import StateError
from nexusmon.store import audit
from nexusmon.store.ledgerbase import LedgerBase
from nexusmon.store.records import AuditEvent
from nexusmon.store.sqlite import insert_sql, select_sql, where_equal

#: (kind, run_id, task_id, payload) of an audit event happening now.
EventSpec = tuple[str, Optional[str], Optional[str], dict[str, Any]]
#: (at, kind, run_id, task_id, payload) of an audit event that happened at Unix time ``at``.
TimedEvent = tuple[float, str, Optional[str], Optional[str], dict[str, Any]]


class AuditTrail(LedgerBase):
    """The ledger's audit methods; ``Ledger.__init__`` sets the batch list up."""

    _batches: list[Callable[[], None]]
    _writing_batches: bool

    def add_batch(self, write: Callable[[], None]) -> None:
        """Have ``write`` write a batch held in memory before any other audit record.

        A writer that batches records (the run's recorder) registers here; every
        append then calls ``write`` first, inside its transaction, so a record
        appended directly (an ``artifact.stored`` by the vault) comes after the
        batched events that happened before it.  ``write`` writes through this
        ledger; it is not called again while it runs.
        """
        self._batches.append(write)

    def write_batches(self) -> None:
        """Write every registered batch now, in one transaction."""
        with self.transaction():
            self._write_batches()

    def _write_batches(self) -> None:
        if self._writing_batches or not self._batches:
            return
        self._writing_batches = True
        try:
            for write in self._batches:
                write()
        finally:
            self._writing_batches = False

    def append_event(
        self,
        kind: str,
        payload: dict[str, Any],
        run_id: str | None = None,
        task_id: str | None = None,
    ) -> AuditEvent:
        """Append one record of an event happening now (callers mask secrets first)."""
        with self.transaction():
            self._write_batches()
            return self._append_events([(time.time(), kind, run_id, task_id, payload)], decode=True)[0]

    def append_events(self, events: Sequence[TimedEvent]) -> None:
        """Append records of events that happened earlier, each at its own time, in order."""
        with self.transaction():
            self._write_batches()
            self._append_events(events)

    def _append_events(self, events: Sequence[TimedEvent], decode: bool = False) -> list[AuditEvent]:
        """Append records; with ``decode``, return them as stored (batches do not need to)."""
        if not events:
            return []
        try:
            # Read the head inside the IMMEDIATE transaction: no other writer can fork the chain.
            seq, prev = self._chain_head()
            params = []
            for at, kind, run_id, task_id, payload in events:
                seq, body = seq + 1, audit.payload_text(payload)
                digest = audit.text_hash(prev, seq, at, kind, run_id, task_id, body)
                params.append((seq, at, kind, run_id, task_id, body, prev, digest))
                prev = digest
            self._sql.executemany(insert_sql("audit", AuditEvent.COLUMNS), params)
            self.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq, prev))
        except sqlite3.OperationalError as exc:
            self._raise_if_audit_tables_missing("cannot append to the audit trail", exc)
            raise
        return [AuditEvent(*p[:5], json.loads(p[5]), *p[6:]) for p in params] if decode else []

    def _chain_head(self) -> tuple[int, str]:
        heads = set(self.query("SELECT seq, hash FROM audit_head"))
        if len(heads) != 1:
            # Appending would hide the damage (or fork the chain): refuse.
            state = "is missing" if not heads else f"has {len(heads)} different rows"
            raise StateError(
                f"{self.path}: cannot append to the audit trail: the chain head (table audit_head) "
                f"{state}; the ledger was changed outside nexusmon (see `nexusmon audit verify`)"
            )
        seq, prev = heads.pop()
        return int(seq), str(prev)

    def _missing_audit_tables(self) -> list[str]:
        present = {row[0] for row in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('audit', 'audit_head')")}
        return [name for name in ("audit", "audit_head") if name not in present]

    def _raise_if_audit_tables_missing(self, doing: str, exc: sqlite3.OperationalError) -> None:
        missing = self._missing_audit_tables()
        if missing:
            raise StateError(
                f"{self.path}: {doing}: table {' and '.join(missing)} is missing (dropped); "
                "the ledger was changed outside nexusmon (see `nexusmon audit verify`)"
            ) from exc

    def events(self, run_id: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """Audit records in chain order; with ``limit``, only the newest ``limit`` of them.

        A record whose payload was edited into something other than a JSON object
        comes back as an :class:`~nexusmon.store.audit.UnreadableEvent`.
        """
        where, params = where_equal(run_id=run_id)
        sql = f"{select_sql(AuditEvent.COLUMNS, 'audit')} {where} ORDER BY seq DESC"
        if limit is not None:
            sql, params = f"{sql} LIMIT ?", [*params, limit]
        try:
            rows = self.query(sql, params)
        except sqlite3.OperationalError as exc:
            self._raise_if_audit_tables_missing("cannot read the audit trail", exc)
            raise
        return [audit.event_of(row) for row in reversed(rows)]

    def finished_runs(self, status: str) -> int:
        """How many runs the trail records as finished with ``status`` (``gc`` never prunes it)."""
        try:
            rows = self.query(
                "SELECT count(DISTINCT run_id) FROM audit WHERE kind = 'run.finished' "
                "AND json_extract(payload, '$.status') = ?", (status,))
        except sqlite3.OperationalError as exc:
            self._raise_if_audit_tables_missing("cannot read the audit trail", exc)
            raise
        return int(rows[0][0]) if rows else 0

    def audit_size(self) -> int:
        """How many audit records there are (0 when table ``audit`` is gone)."""
        if "audit" in self._missing_audit_tables():
            return 0
        return int(self.query("SELECT count(*) FROM audit")[0][0])

    def verify_audit(self) -> audit.AuditProblem | None:
        """The first broken audit record (edited, removed, reordered), or None when intact.

        A dropped ``audit`` or ``audit_head`` table is a problem too, not an error.
        """
        with self._sql.snapshot(), self._sql.locked() as conn:
            missing = self._missing_audit_tables()
            if "audit" in missing:
                return audit.AuditProblem(None, "table audit (the whole trail) is missing (dropped)")
            heads = [] if missing else conn.execute("SELECT seq, hash FROM audit_head").fetchall()
            cursor = conn.execute(f"{select_sql(AuditEvent.COLUMNS, 'audit')} ORDER BY seq")
            return audit.verify_chain(cursor, heads)
