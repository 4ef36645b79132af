"""The ledger: every run, task, cache entry, approval, omen and audit record in one SQLite file.

``<state_dir>/ledger.db`` is a plain SQLite database (WAL mode) that
``sqlite-utils`` or Datasette can query.  JSON columns hold JSON text; times
are Unix seconds (REAL); statuses, ranks and decisions are their text values.

Tables:

- ``runs(run_id PK, mission, mission_file, mission_digest, status, inputs JSON,
  git_commit, parent_run_id, parent_task_id, started_at, finished_at, error,
  options JSON)``: one row per mission run; ``parent_*`` is set for runs
  started by the ``mission`` worker; ``options`` holds the flags the run was
  started with (``keep_going``, ``use_cache``, ``concurrency``).
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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from nexusmon.errors import StateError
from nexusmon.store.migrations import MIGRATIONS, schema_drift
from nexusmon.store.records import ApprovalRow, CacheRow, OmenRow
from nexusmon.store.runtables import RunTables
from nexusmon.store.sqlite import Connection, insert_sql, select_sql, upsert_sql, where_equal

if TYPE_CHECKING:
    import sqlite_utils

LEDGER_FILE = "ledger.db"


_HIT_COLUMNS = (*CacheRow.COLUMNS[:-1], "NULL")  # see Ledger.cache_get
_MANY = 500  # parameters per query: well below SQLite's limit, whatever its build


class Ledger(RunTables):
    """The state store of one state directory.

    All methods are safe to call from several threads; several processes may
    use the same ledger at once (see :mod:`nexusmon.store.sqlite`).  ``db`` is
    a ``sqlite_utils.Database`` on the same connection, for reading and
    introspection; writes go through the methods here so that they stay inside
    ledger transactions.  Its methods come in parts: runs, tasks and logs
    (:class:`~nexusmon.store.runtables.RunTables`), the audit trail
    (:class:`~nexusmon.store.audittrail.AuditTrail`), and raw access and
    transactions (:class:`~nexusmon.store.ledgerbase.LedgerBase`).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {self.state_dir}: {exc}") from exc
        self.path = self.state_dir / LEDGER_FILE
        self._sql = Connection(self.path)
        self._batches = []
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

    # ---------------------------------------------------------- cache

    def cache_get(self, fingerprint: str) -> CacheRow | None:
        """The cached result for a task fingerprint, or None.

        Its ``parts`` are left unread (empty): a hit needs only outputs and artifacts,
        and decoding what went into every fingerprint would slow an up-to-date re-run.
        """
        rows = self.query(f"{select_sql(_HIT_COLUMNS, 'cache')} WHERE fingerprint = ?", (fingerprint,))
        return CacheRow.from_row(rows[0]) if rows else None

    def cache_get_many(self, fingerprints: Iterable[str]) -> dict[str, CacheRow]:
        """:meth:`cache_get` of many fingerprints in a few queries: the ones found."""
        wanted = list(dict.fromkeys(fingerprints))
        found: dict[str, CacheRow] = {}
        for start in range(0, len(wanted), _MANY):
            chunk = wanted[start:start + _MANY]
            marks = ", ".join("?" * len(chunk))
            for row in self.query(f"{select_sql(_HIT_COLUMNS, 'cache')} WHERE fingerprint IN ({marks})", chunk):
                hit = CacheRow.from_row(row)
                found[hit.fingerprint] = hit
        return found

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

    def integrity_check(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check`` findings; empty when the file is sound."""
        return [row[0] for row in self.query("PRAGMA integrity_check") if row[0] != "ok"]

    def schema_drift(self) -> list[str]:
        """Tables and columns of the current schema that this ledger lacks or types differently."""
        with self._sql.locked():
            return schema_drift(self.db)

