"""The ledger's schema, as numbered migrations applied in order (see Ledger._migrate).

Each migration is literal SQL, run statement by statement inside the ledger's
own ``BEGIN IMMEDIATE`` transaction, so a migration is atomic and a released
version never changes with a library upgrade. Columns holding JSON are TEXT;
the tables are documented in the README and open as they are in sqlite-utils
or Datasette.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from nexusmon.store import audit

if TYPE_CHECKING:
    import sqlite_utils

_SCHEMA_V1 = (
    """CREATE TABLE "runs" (
        "run_id" TEXT PRIMARY KEY,
        "mission" TEXT NOT NULL,
        "mission_file" TEXT,
        "mission_digest" TEXT,
        "status" TEXT NOT NULL,
        "inputs" TEXT,
        "git_commit" TEXT,
        "parent_run_id" TEXT,
        "parent_task_id" TEXT,
        "started_at" REAL,
        "finished_at" REAL,
        "error" TEXT
    )""",
    """CREATE TABLE "tasks" (
        "run_id" TEXT,
        "task_id" TEXT,
        "status" TEXT NOT NULL,
        "rank" TEXT,
        "decision" TEXT,
        "reasons" TEXT,
        "attempts" INTEGER,
        "started_at" REAL,
        "finished_at" REAL,
        "duration_s" REAL,
        "cpu_s" REAL,
        "peak_rss_kb" INTEGER,
        "outputs" TEXT,
        "artifacts" TEXT,
        "error" TEXT,
        "failure_kind" TEXT,
        "fingerprint" TEXT,
        "plan_digest" TEXT,
        "cost_usd" REAL,
        PRIMARY KEY ("run_id", "task_id")
    )""",
    """CREATE TABLE "logs" (
        "run_id" TEXT,
        "task_id" TEXT,
        "attempt" INTEGER,
        "text" TEXT
    )""",
    """CREATE TABLE "cache" (
        "fingerprint" TEXT PRIMARY KEY,
        "mission" TEXT,
        "task_id" TEXT,
        "run_id" TEXT,
        "outputs" TEXT,
        "artifacts" TEXT,
        "created_at" REAL,
        "parts" TEXT
    )""",
    """CREATE TABLE "artifacts" (
        "path" TEXT,
        "version" INTEGER,
        "digest" TEXT NOT NULL,
        "size" INTEGER,
        "run_id" TEXT,
        "task_id" TEXT,
        "created_at" REAL,
        "lineage" TEXT,
        "review" TEXT,
        PRIMARY KEY ("path", "version")
    )""",
    """CREATE TABLE "reviews" (
        "path" TEXT,
        "version" INTEGER,
        "verdict" TEXT,
        "note" TEXT,
        "operator" TEXT,
        "at" REAL
    )""",
    """CREATE TABLE "approvals" (
        "id" INTEGER PRIMARY KEY,
        "run_id" TEXT,
        "task_id" TEXT,
        "mission" TEXT,
        "plan_digest" TEXT,
        "verdict" TEXT,
        "operator" TEXT,
        "public_key" TEXT,
        "rank" TEXT,
        "signature" TEXT,
        "note" TEXT,
        "at" TEXT
    )""",
    """CREATE TABLE "omens" (
        "mission" TEXT,
        "task_id" TEXT,
        "kind" TEXT,
        "count" INTEGER,
        "last_at" REAL,
        PRIMARY KEY ("mission", "task_id", "kind")
    )""",
    """CREATE TABLE "audit" (
        "seq" INTEGER PRIMARY KEY,
        "at" REAL,
        "kind" TEXT NOT NULL,
        "run_id" TEXT,
        "task_id" TEXT,
        "payload" TEXT,
        "prev_hash" TEXT NOT NULL,
        "hash" TEXT NOT NULL
    )""",
    """CREATE TABLE "audit_head" (
        "seq" INTEGER,
        "hash" TEXT
    )""",
    "CREATE INDEX idx_logs_run_id_task_id ON logs (run_id, task_id)",
    "CREATE INDEX idx_cache_mission_task_id ON cache (mission, task_id)",
    "CREATE INDEX idx_runs_mission ON runs (mission)",
    "CREATE INDEX idx_approvals_run_id_task_id ON approvals (run_id, task_id)",
    "CREATE INDEX idx_artifacts_digest ON artifacts (digest)",
    "CREATE INDEX idx_audit_run_id ON audit (run_id)",
    "CREATE INDEX idx_audit_kind ON audit (kind)",
)


def _migration_1(conn: sqlite3.Connection) -> None:
    """Every table of the first schema, and an empty audit chain head."""
    for statement in _SCHEMA_V1:
        conn.execute(statement)
    conn.execute("INSERT INTO audit_head (seq, hash) VALUES (0, ?)", [audit.GENESIS])


def _migration_2(conn: sqlite3.Connection) -> None:
    """``runs.options``: the flags a run was started with, so ``resume`` keeps them."""
    conn.execute('ALTER TABLE "runs" ADD COLUMN "options" TEXT')


#: Schema migrations, applied in order; a version once released never changes.
MIGRATIONS: list[tuple[int, Callable[[sqlite3.Connection], None]]] = [(1, _migration_1), (2, _migration_2)]


def schema_drift(db: sqlite_utils.Database) -> list[str]:
    """Tables and columns of the current schema that ``db`` lacks or types differently.

    The expected schema is every migration applied to an in-memory database, so both
    sides are read the same way, through sqlite-utils' introspection.
    """
    import sqlite_utils  # slow to import: only `doctor` asks

    expected = sqlite_utils.Database(memory=True, execute_plugins=False)
    try:
        for _version, migrate in MIGRATIONS:
            migrate(expected.conn)
        found = []
        for table in expected.tables:
            have = db.table(table.name)
            if not have.exists():
                found.append(f"table {table.name} is missing")
                continue
            columns = have.columns_dict
            for column, kind in table.columns_dict.items():
                if column not in columns:
                    found.append(f"column {table.name}.{column} is missing")
                elif columns[column] is not kind:
                    found.append(f"column {table.name}.{column} is {columns[column].__name__}, "
                                 f"expected {kind.__name__}")
        return found
    finally:
        expected.close()
