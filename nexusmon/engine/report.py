"""Run documents: the JSON of `run`, `resume` and `show`, built from the ledger."""

from __future__ import annotations

from typing import Any

from nexusmon.errors import UsageError
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import RunRow, TaskRow


def find_run(ledger: Ledger, ref: str) -> RunRow:
    run = ledger.get_run(ref)
    if run is None:
        raise UsageError(f"no run '{ref}'" + (" (nothing has run yet)" if ref == "last" else ""))
    return run


def task_document(row: TaskRow) -> dict[str, Any]:
    return {
        "id": row.task_id,
        "status": row.status,
        "rank": row.rank,
        "decision": row.decision,
        "reasons": list(row.reasons),
        "attempts": row.attempts,
        "duration_s": row.duration_s if row.duration_s is not None else 0.0,
        "outputs": dict(row.outputs),
        "artifacts": [dict(a) for a in row.artifacts],
        "error": row.error,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "cpu_s": row.cpu_s,
        "peak_rss_kb": row.peak_rss_kb,
        "cost_usd": row.cost_usd,
        "plan_digest": row.plan_digest,
    }


def run_document(ledger: Ledger, run: RunRow) -> dict[str, Any]:
    tasks = [task_document(r) for r in ledger.task_rows(run.run_id)]
    return {
        "run_id": run.run_id,
        "mission": run.mission,
        "status": run.status,
        "error": run.error,
        "inputs": dict(run.inputs),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_s": round(run.finished_at - run.started_at, 3) if run.finished_at else None,
        "git_commit": run.git_commit,
        "parent_run_id": run.parent_run_id,
        "options": dict(run.options),
        "tasks": tasks,
        "summary": _summary(tasks),
    }


def _summary(tasks: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    return counts
