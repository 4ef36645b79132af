"""`run --dry-run`: the plan as a run would begin it, shaped like a run document.

Governance and the cache decide some tasks' fate before anything executes: a
task that is blocked, held for approval, rejected, skipped by a static `if` or
answered by the cache. The dry run predicts those statuses (and the dependents
they hold, `cancelled` as the run would leave them); every task it would
execute is `planned`. The run status is the one governance alone would give
the run, and so is the exit code (4 blocked, 3 held, 1 rejected, 0 otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nexusmon.compile.plan import Plan
from nexusmon.engine.planview import PlanRow, plan_document
from nexusmon.engine.runner import EXIT_CODES
from nexusmon.spec.model import Decision, RunStatus, TaskStatus

PLANNED = "planned"

#: Task statuses that hold a task's dependents, and the run status each gives the run, in
#: the order the run itself ranks them (a failure outranks a block outranks a hold).
_HOLDING = {
    TaskStatus.FAILED.value: RunStatus.FAILED,
    TaskStatus.BLOCKED.value: RunStatus.BLOCKED,
    TaskStatus.AWAITING_APPROVAL.value: RunStatus.AWAITING_APPROVAL,
}


def predicted_statuses(rows: Sequence[PlanRow], use_cache: bool = True) -> dict[str, str]:
    """Each task's status where the plan already decides it, ``planned`` elsewhere."""
    statuses: dict[str, str] = {}
    for row in rows:  # in plan order: a task's needs come before it
        statuses[row.id] = _predicted(row, [statuses.get(n, PLANNED) for n in row.needs], use_cache)
    return statuses


def _predicted(row: PlanRow, upstream: list[str], use_cache: bool) -> str:
    if any(s in _HOLDING or s == TaskStatus.CANCELLED.value for s in upstream):
        return TaskStatus.CANCELLED.value
    if row.condition is False:
        return TaskStatus.SKIPPED.value
    if row.decision == Decision.BLOCKED.value:
        return TaskStatus.BLOCKED.value
    if row.decision == Decision.APPROVE.value:
        if row.signed is None:
            return TaskStatus.AWAITING_APPROVAL.value
        if row.signed.code != "approved":
            return TaskStatus.FAILED.value
    if use_cache and row.cache == "hit":
        return TaskStatus.CACHED.value
    return PLANNED


def predicted_run_status(statuses: dict[str, str]) -> str:
    """The status governance alone gives the run: ``planned`` when nothing holds it."""
    found = set(statuses.values())
    return next((run.value for task, run in _HOLDING.items() if task in found), PLANNED)


def dry_run_exit_code(run_status: str) -> int:
    """The exit code the run would end with for the held, blocked or rejected part."""
    return 0 if run_status == PLANNED else EXIT_CODES[RunStatus(run_status)]


def dry_run_document(plan: Plan, rows: Sequence[PlanRow], use_cache: bool = True) -> dict[str, Any]:
    """The plan document plus the run document's fields (SPEC §7), nothing executed."""
    statuses = predicted_statuses(rows, use_cache)
    doc = plan_document(plan, list(rows))
    for task in doc["tasks"]:
        task.update(status=statuses[task["id"]], attempts=0, duration_s=0.0, outputs={}, artifacts=[])
    status = predicted_run_status(statuses)
    return {"run_id": None, "dry_run": True, "status": status, "exit_code": dry_run_exit_code(status),
            **doc}
