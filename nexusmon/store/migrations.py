"""The ledger's schema, as numbered migrations applied in order (see Ledger._migrate).

The DDL comes from sqlite-utils but runs on the ledger's own connection:
`Table.create()` in sqlite-utils 3.x commits the open transaction, which would
make a migration non-atomic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nexusmon.store import audit

if TYPE_CHECKING:
    import sqlite_utils

#: The first schema: table -> (columns, primary key, NOT NULL columns).
_TABLES_V1: dict[str, tuple[dict[str, type], Any, set[str]]] = {
    "runs": (
        {"run_id": str, "mission": str, "mission_file": str, "mission_digest": str,
         "status": str, "inputs": dict, "git_commit": str, "parent_run_id": str,
         "parent_task_id": str, "started_at": float, "finished_at": float, "error": str},
        "run_id", {"mission", "status"},
    ),
    "tasks": (
        {"run_id": str, "task_id": str, "status": str, "rank": str, "decision": str,
         "reasons": list, "attempts": int, "started_at": float, "finished_at": float,
         "duration_s": float, "cpu_s": float, "peak_rss_kb": int, "outputs": dict,
         "artifacts": list, "error": str, "failure_kind": str, "fingerprint": str,
         "plan_digest": str, "cost_usd": float},
        ("run_id", "task_id"), {"status"},
    ),
    "logs": ({"run_id": str, "task_id": str, "attempt": int, "text": str}, None, set()),
    "cache": (
        {"fingerprint": str, "mission": str, "task_id": str, "run_id": str, "outputs": dict,
         "artifacts": list, "created_at": float, "parts": dict},
        "fingerprint", set(),
    ),
    "artifacts": (
        {"path": str, "version": int, "digest": str, "size": int, "run_id": str,
         "task_id": str, "created_at": float, "lineage": dict, "review": str},
        ("path", "version"), {"digest"},
    ),
    "reviews": (
        {"path": str, "version": int, "verdict": str, "note": str, "operator": str, "at": float},
        None, set(),
    ),
    "approvals": (
        {"id": int, "run_id": str, "task_id": str, "mission": str, "plan_digest": str,
         "verdict": str, "operator": str, "public_key": str, "rank": str, "signature": str,
         "note": str, "at": str},
        "id", set(),
    ),
    "omens": (
        {"mission": str, "task_id": str, "kind": str, "count": int, "last_at": float},
        ("mission", "task_id", "kind"), set(),
    ),
    "audit": (
        {"seq": int, "at": float, "kind": str, "run_id": str, "task_id": str, "payload": dict,
         "prev_hash": str, "hash": str},
        "seq", {"kind", "prev_hash", "hash"},
    ),
    "audit_head": ({"seq": int, "hash": str}, None, set()),
}
_INDEXES_V1 = [("logs", ["run_id", "task_id"]), ("cache", ["mission", "task_id"]), ("runs", ["mission"]),
               ("approvals", ["run_id", "task_id"]), ("artifacts", ["digest"]), ("audit", ["run_id"]),
               ("audit", ["kind"])]


def _migration_1(db: sqlite_utils.Database) -> None:
    """Every table of the first schema, and an empty audit chain head."""
    # DDL from sqlite-utils, executed on our connection: `Table.create()` in sqlite-utils 3.x
    # commits the open transaction, which would make a migration non-atomic.
    for name, (columns, pk, not_null) in _TABLES_V1.items():
        db.conn.execute(db.create_table_sql(name, columns, pk=pk, not_null=not_null))
    for name, indexed in _INDEXES_V1:
        db.conn.execute(
            f"CREATE INDEX idx_{name}_{'_'.join(indexed)} ON {name} ({', '.join(indexed)})"
        )
    db.conn.execute("INSERT INTO audit_head (seq, hash) VALUES (0, ?)", [audit.GENESIS])


#: Schema migrations, applied in order; a version once released never changes.
MIGRATIONS: list[tuple[int, Callable[[sqlite_utils.Database], None]]] = [(1, _migration_1)]
