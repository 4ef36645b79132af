"""Per-run gates: governance verdicts plus the approvals and rejections that apply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nexusmon.compile.digest import plan_digest
from nexusmon.compile.plan import Plan
from nexusmon.engine.scheduler import Gate
from nexusmon.govern.approvals import (
    Approval,
    ApprovalRefused,
    applies_to,
    load_approval_files,
    verify,
)
from nexusmon.govern.facts import Verdict
from nexusmon.spec.model import Decision, Operator, TaskStatus
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import ApprovalRow

APPROVALS_DIR = "approvals"


def ledger_approval(row: ApprovalRow) -> Approval:
    return Approval(
        run_id=row.run_id, task_id=row.task_id, mission=row.mission, plan_digest=row.plan_digest,
        verdict=row.verdict, operator=row.operator, public_key=row.public_key, rank=row.rank,
        note=row.note or "", at=row.at, signature=row.signature,
    )


def approval_row(approval: Approval) -> ApprovalRow:
    return ApprovalRow(
        run_id=approval.run_id, task_id=approval.task_id, mission=approval.mission,
        plan_digest=approval.plan_digest, verdict=approval.verdict, operator=approval.operator,
        public_key=approval.public_key, rank=approval.rank, signature=approval.signature,
        at=approval.at, note=approval.note,
    )


def gates_for(
    plan: Plan, verdicts: Mapping[str, Verdict], run_id: str, ledger: Ledger,
    operators: Sequence[Operator], root: Path,
) -> tuple[dict[str, Gate], list[str]]:
    """A gate per task, and one-line problems met while reading approvals."""
    files, problems = load_approval_files(root / APPROVALS_DIR)
    stored = ledger.approvals(run_id=run_id)
    gates: dict[str, Gate] = {}
    for task in plan.tasks:
        verdict = verdicts[task.id]
        digest = plan_digest(plan.mission.id, task, verdict.rank, plan.env)
        reasons = tuple(str(r) for r in verdict.reasons)
        hold: TaskStatus | None = None
        note: str | None = None
        if verdict.decision is Decision.BLOCKED:
            hold = TaskStatus.BLOCKED
            note = "; ".join(str(r) for r in verdict.reasons if r.code in ("deny", "capability", "omen", "score")) or "blocked by policy"
        elif verdict.decision is Decision.APPROVE:
            found = _decision(task.id, digest, run_id, stored, files, operators, verdict.approvers, problems)
            if found is None:
                hold, note = TaskStatus.AWAITING_APPROVAL, "waiting for an operator approval"
            elif found.verdict == "reject":
                hold, note = TaskStatus.FAILED, f"rejected by {found.operator}" + (f": {found.note}" if found.note else "")
            else:
                note = f"approved by {found.operator}"
        gates[task.id] = Gate(verdict.rank, verdict.decision, reasons, digest, hold, note)
    return gates, problems


def _decision(
    task_id: str, digest: str, run_id: str, stored: Sequence[ApprovalRow], files: Sequence[Approval],
    operators: Sequence[Operator], approvers: Sequence[str], problems: list[str],
) -> Approval | None:
    """The newest valid approval or rejection for this task's digest, if any."""
    candidates = [ledger_approval(r) for r in stored if r.task_id == task_id]
    candidates = [a for a in candidates if applies_to(a, plan_digest=digest, run_id=run_id)]
    candidates += [a for a in files if a.task_id == task_id and applies_to(a, plan_digest=digest, run_id=None)]
    found = None
    for approval in candidates:
        try:
            verify(approval, operators)
        except ApprovalRefused as exc:
            problems.append(f"approval for task '{task_id}' refused: {exc}")
            continue
        if approvers and approval.operator not in approvers:
            problems.append(f"approval for task '{task_id}' refused: {approval.operator} is not among "
                            f"the approvers named by policy ({', '.join(approvers)})")
            continue
        if found is None or approval.at >= found.at:
            found = approval
    return found
