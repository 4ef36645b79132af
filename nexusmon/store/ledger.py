"""The ledger: every run, task, cache entry, approval, omen and audit record in one SQLite file.

``<state_dir>/ledger.db`` is a plain SQLite database (WAL mode) that
``sqlite-utils`` or Datasette can query.  JSON columns hold JSON text; times
are Unix seconds (REAL); statuses, ranks and decisions are their text values.

Tables:

- ``runs(run_id PK, mission, mission_file, mission_digest, status, inputs JSON,
  git_commit, parent_run_id, parent_task_id, started_at, finished_at, error)``:
  one row per mission run; ``parent_*`` is set for runs started by the
  ``mission`` worker.
- ``tasks(run_id, task_id, status, rank, decision, reasons JSON, attempts,
  started_at, finished_at, duration_s, cpu_s, peak_rss_kb, outputs JSON,
  artifacts JSON, error, failure_kind, fingerprint, plan_digest, cost_usd)``,
  primary key ``(run_id, task_id)``: the latest state of each task.
- ``logs(run_id, task_id, attempt, text)``: captured output, per attempt.
- ``cache(fingerprint PK, mission, task_id, run_id, outputs JSON, artifacts JSON,
  created_at)``: results a task with the same fingerprint may reuse.
- ``artifacts(path, version, digest, size, run_id, task_id, created_at,
  lineage JSON, review)``, primary key ``(path, version)``: vault versions;
  the blob is ``vault/objects/<first 2 hex>/<sha256 hex>``.
- ``reviews(path, version, verdict, note, operator, at)``: artifact reviews.
- ``approvals(id PK, run_id, task_id, mission, plan_digest, verdict, operator,
  public_key, rank, signature, note, at)``: signed operator verdicts, as signed.
- ``omens(mission, task_id, kind, count, last_at)``, primary key
  ``(mission, task_id, kind)``: repeated-failure counters.
- ``audit(seq PK, at, kind, run_id, task_id, payload JSON, prev_hash, hash)``:
  the hash-chained audit trail (see :mod:`nexusmon.store.audit`), and
  ``audit_head(seq, hash)``: its last record, so tail removal is detected.
  ``at`` is when the event happened; ``seq`` orders records as their events
  happened (batches held in memory are written before any other record: see
  :meth:`Ledger.add_batch`).
- ``migrations(version PK, applied_at)``: schema versions applied.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from nexusmon.errors import StateError, UsageError
from nexusmon.store import audit
from nexusmon.store.migrations import MIGRATIONS, schema_drift
from nexusmon.store.records import (
    ApprovalRow,
    AuditEvent,
    CacheRow,
    OmenRow,
    RunRow,
    TaskRow,
    text,
)
from nexusmon.store.sqlite import Connection, insert_sql, select_sql, upsert_sql, where_equal

#: (kind, run_id, task_id, payload) of an audit event happening now.
EventSpec = tuple[str, Optional[str], Optional[str], dict[str, Any]]
#: (at, kind, run_id, task_id, payload) of an audit event that happened at Unix time ``at``.
TimedEvent = tuple[float, str, Optional[str], Optional[str], dict[str, Any]]

if TYPE_CHECKING:
    import contextlib

    import sqlite_utils

LEDGER_FILE = "ledger.db"


class AmbiguousRun(UsageError):
    """A run id prefix matches more than one run."""


class Ledger:
    """The state store of one state directory.

    All methods are safe to call from several threads; several processes may
    use the same ledger at once (see :mod:`nexusmon.store.sqlite`).  ``db`` is
    a ``sqlite_utils.Database`` on the same connection, for reading and
    introspection; writes go through the methods here so that they stay inside
    ledger transactions.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {self.state_dir}: {exc}") from exc
        self.path = self.state_dir / LEDGER_FILE
        self._sql = Connection(self.path)
        self._batches: list[Callable[[], None]] = []
        self._writing_batches = False  # only touched inside a transaction (under the lock)
        try:
            self._migrate()
        except BaseException:
            self._sql.close()
            raise

    @functools.cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils on this connection; imported on first use (it is slow to import)."""
        import sqlite_utils  # heavy (it may pull in numpy): only introspection needs it

        return sqlite_utils.Database(self._sql.raw, execute_plugins=False)

    # ---------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._sql.close()

    def __enter__(self) -> Ledger:  # noqa: PYI034 (no typing_extensions dependency)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); nested blocks join the outer one."""
        return self._sql.transaction()

    def _migrate(self) -> None:
        with self.transaction():
            self.execute(
                "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
            )
            applied = {row[0] for row in self.query("SELECT version FROM migrations")}
            newest = max(version for version, _ in MIGRATIONS)
            if applied and max(applied) > newest:
                raise StateError(
                    f"{self.path}: schema version {max(applied)} was written by a newer "
                    f"nexusmon (this one knows up to {newest}); upgrade nexusmon"
                )
            for version, migrate in MIGRATIONS:
                if version not in applied:
                    with self._sql.locked() as conn:
                        migrate(conn)
                    self.execute(
                        "INSERT INTO migrations (version, applied_at) VALUES (?, ?)",
                        (version, time.time()),
                    )

    def schema_versions(self) -> list[int]:
        """Migration versions applied to this ledger, in order."""
        return [row[0] for row in self.query("SELECT version FROM migrations ORDER BY version")]

    # ---------------------------------------------------------- raw access

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read query (for the vault and reports; prefer the typed methods)."""
        return self._sql.query(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement (in the current transaction, if any); rows changed."""
        return self._sql.execute(sql, params)

    # ---------------------------------------------------------- runs

    def create_run(self, run: RunRow) -> None:
        """Record a new run; its id must be new."""
        try:
            with self.transaction():
                self.execute(insert_sql("runs", RunRow.COLUMNS), run.params())
        except sqlite3.IntegrityError as exc:
            raise StateError(f"run {run.run_id} already exists in {self.path}") from exc

    def update_run(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: float | None = None,
        error: str | None = None,
    ) -> None:
        """Set a run's status, end time and error (None clears them, e.g. on resume)."""
        with self.transaction():
            changed = self.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
                (text(status), finished_at, error, run_id),
            )
        if not changed:
            raise StateError(f"no run {run_id} in {self.path}")

    def get_run(self, ref: str) -> RunRow | None:
        """The run named by an exact id, ``last`` or a unique id prefix.

        ``last`` is the newest run started by a user, not a child run a ``mission`` task started.
        """
        base = select_sql(RunRow.COLUMNS, "runs")
        if ref == "last":
            rows = self.query(f"{base} WHERE parent_run_id IS NULL ORDER BY run_id DESC LIMIT 1") or self.query(
                f"{base} ORDER BY run_id DESC LIMIT 1")
        else:
            rows = self.query(f"{base} WHERE run_id = ?", (ref,)) or self.query(
                f"{base} WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 6", (len(ref), ref)
            )
        if len(rows) > 1:
            shown = ", ".join(row[0] for row in rows[:5])
            raise AmbiguousRun(f"run id prefix '{ref}' matches several runs: {shown}")
        return RunRow.from_row(rows[0]) if rows else None

    def list_runs(self, limit: int = 50, mission: str | None = None) -> list[RunRow]:
        """Newest runs first, optionally of one mission."""
        where, params = ("WHERE mission = ?", [mission]) if mission else ("", [])
        rows = self.query(
            f"{select_sql(RunRow.COLUMNS, 'runs')} {where} ORDER BY run_id DESC LIMIT ?", [*params, limit]
        )
        return [RunRow.from_row(row) for row in rows]

    def count_runs(self, status: str) -> int:
        """How many runs ended with ``status`` (e.g. succeeded runs, for evolution XP)."""
        rows = self.query("SELECT count(*) FROM runs WHERE status = ?", (text(status),))
        return int(rows[0][0])

    # ---------------------------------------------------------- tasks and logs

    def save_tasks(
        self, rows: Sequence[TaskRow | Mapping[str, Any]], events: Sequence[EventSpec] = (),
    ) -> None:
        """Upsert task rows (records, or mappings of their fields) and append audit events
        happening now, all in one transaction."""
        sql = upsert_sql("tasks", TaskRow.COLUMNS, ("run_id", "task_id"))
        params = [r.params() if isinstance(r, TaskRow) else TaskRow.params_of(r) for r in rows]
        with self.transaction():
            self._write_batches()
            self._sql.executemany(sql, params)
            if events:
                now = time.time()
                self._append_events([(now, *spec) for spec in events])

    def task_rows(self, run_id: str) -> list[TaskRow]:
        """The tasks of a run, in the order they were first saved."""
        rows = self.query(f"{select_sql(TaskRow.COLUMNS, 'tasks')} WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [TaskRow.from_row(row) for row in rows]

    def append_log(self, run_id: str, task_id: str, attempt: int, text: str) -> None:
        """Add captured output of one attempt (several calls per attempt append)."""
        with self.transaction():
            self.execute(
                "INSERT INTO logs (run_id, task_id, attempt, text) VALUES (?, ?, ?, ?)",
                (run_id, task_id, attempt, text),
            )

    def logs(self, run_id: str, task_id: str) -> str:
        """A task's captured output; with several attempts, each starts with a header line."""
        rows = self.query(
            "SELECT attempt, text FROM logs WHERE run_id = ? AND task_id = ? "
            "ORDER BY attempt, rowid",
            (run_id, task_id),
        )
        by_attempt: dict[int, str] = {}
        for attempt, chunk in rows:
            by_attempt[attempt] = by_attempt.get(attempt, "") + chunk
        if len(by_attempt) <= 1:
            return "".join(by_attempt.values())
        return "".join(
            f"--- attempt {attempt} ---\n{_line_ended(out)}" for attempt, out in by_attempt.items()
        )

    # ---------------------------------------------------------- cache

    def cache_get(self, fingerprint: str) -> CacheRow | None:
        """The cached result for a task fingerprint, or None."""
        rows = self.query(f"{select_sql(CacheRow.COLUMNS, 'cache')} WHERE fingerprint = ?", (fingerprint,))
        return CacheRow.from_row(rows[0]) if rows else None

    def cache_latest(self, mission: str, task_id: str) -> CacheRow | None:
        """The newest cache entry of a task, whatever its fingerprint (to explain a miss)."""
        rows = self.query(
            f"{select_sql(CacheRow.COLUMNS, 'cache')} WHERE mission = ? AND task_id = ? "
            "ORDER BY created_at DESC LIMIT 1", (mission, task_id),
        )
        return CacheRow.from_row(rows[0]) if rows else None

    def cache_put(self, row: CacheRow) -> None:
        """Store (or replace) the cached result for a fingerprint."""
        with self.transaction():
            self.execute(upsert_sql("cache", CacheRow.COLUMNS, ("fingerprint",)), row.params())

    # ---------------------------------------------------------- approvals and omens

    def add_approval(self, row: ApprovalRow) -> None:
        """Record a signed verdict (wrap in ``transaction()`` with its audit event)."""
        with self.transaction():
            self.execute(insert_sql("approvals", ApprovalRow.COLUMNS[:-1]), row.params())

    def approvals(
        self, run_id: str | None = None, task_id: str | None = None
    ) -> list[ApprovalRow]:
        """Recorded verdicts, oldest first, optionally of one run and/or task."""
        where, params = where_equal(run_id=run_id, task_id=task_id)
        rows = self.query(f"{select_sql(ApprovalRow.COLUMNS, 'approvals')} {where} ORDER BY id", params)
        return [ApprovalRow.from_row(row) for row in rows]

    def bump_omen(self, mission: str, task_id: str, kind: str) -> int:
        """Count one more failure of ``kind``; returns the new count."""
        with self.transaction():
            self.execute(
                "INSERT INTO omens (mission, task_id, kind, count, last_at) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT(mission, task_id, kind) DO UPDATE SET count = count + 1, "
                "last_at = excluded.last_at",
                (mission, task_id, kind, time.time()),
            )
            rows = self.query(
                "SELECT count FROM omens WHERE mission = ? AND task_id = ? AND kind = ?",
                (mission, task_id, kind),
            )
        return int(rows[0][0])

    def omens(self, mission: str | None = None) -> list[OmenRow]:
        """Omen counters, by mission, task and kind."""
        where, params = where_equal(mission=mission)
        rows = self.query(
            f"{select_sql(OmenRow.COLUMNS, 'omens')} {where} ORDER BY mission, task_id, kind", params
        )
        return [OmenRow(*row) for row in rows]

    def clear_omens(self, mission: str | None = None, task_id: str | None = None) -> int:
        """Reset counters (all, of a mission, or of one task); returns rows cleared."""
        where, params = where_equal(mission=mission, task_id=task_id)
        with self.transaction():
            return self.execute(f"DELETE FROM omens {where}", params)

    # ---------------------------------------------------------- audit

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

    def integrity_check(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check`` findings; empty when the file is sound."""
        return [row[0] for row in self.query("PRAGMA integrity_check") if row[0] != "ok"]

    def schema_drift(self) -> list[str]:
        """Tables and columns of the current schema that this ledger lacks or types differently."""
        with self._sql.locked():
            return schema_drift(self.db)


def _line_ended(text: str) -> str:
    return text if text.endswith("\n") or not text else text + "\n"
