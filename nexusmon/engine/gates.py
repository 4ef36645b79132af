"""Per-run gates: governance verdicts plus the approvals and rejections that apply.

A held task is settled by the newest valid verdict on its plan digest: a row
`nexusmon approve`/`reject` recorded for this run, or a committed file in
``approvals/`` (any run of the same plan). `plan` predicts with the same file
matching (:func:`with_approval_files`), so what it shows is what `run` does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from nexusmon.compile.digest import plan_digest
from nexusmon.compile.plan import Plan
from nexusmon.engine.project import Project
from nexusmon.engine.scheduler import Gate
from nexusmon.errors import Diagnostic
from nexusmon.govern.approvals import (
    APPROVALS_DIR,
    Approval,
    ApprovalRefused,
    FiledApproval,
    applies_to,
    check_approval_files,
    check_rank,
    read_approval_files,
    verify,
)
from nexusmon.govern.facts import Reason, Verdict
from nexusmon.govern.gates import effective_settings
from nexusmon.spec.model import Decision, Operator, Rank, TaskStatus
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import ApprovalRow

__all__ = ["APPROVALS_DIR", "approval_row", "gates_for", "ledger_approval", "with_approval_files"]

#: Reason codes naming the signed verdict that settles a held task.
SIGNED_CODES = ("approved", "rejected")
#: The audit record of a committed approval file letting a held task of this run go ahead.
APPROVAL_APPLIED = "approval.applied"


class Signed(Struct, frozen=True):
    """A verified verdict on a task, and the approvals/ file it came from (None: the ledger)."""

    approval: Approval
    path: str | None = None

    def reason(self) -> Reason:
        verb = "approved" if self.approval.approved else "rejected"
        return Reason(verb, f"{verb} by {self.approval.operator}", location=self.path)


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
    """A gate per task, and one-line problems met while reading approvals.

    When a task needs approval, every file in approvals/ that runs ignore is one
    problem (its located error). An approval file that lets a task of this run go
    ahead is audited as `approval.applied`, right after the run's start record.
    """
    needs_approval = any(v.decision is Decision.APPROVE for v in verdicts.values())
    files, broken = check_approval_files(root, operators) if needs_approval else ([], [])
    problems = [str(d) for d in broken]
    stored = ledger.approvals(run_id=run_id)
    done = {r.task_id for r in ledger.task_rows(run_id) if TaskStatus(r.status).ok}
    gates: dict[str, Gate] = {}
    applied: list[tuple[str, Signed]] = []
    for task in plan.tasks:
        verdict = verdicts[task.id]
        digest = plan_digest(plan.mission.id, task, verdict.rank, plan.env)
        found = None
        if verdict.decision is Decision.APPROVE:
            found = _decision(task.id, digest, verdict.rank, run_id, stored, files, operators,
                              verdict.approvers, problems)
        gates[task.id] = _gate(verdict, digest, found, broken)
        from_file = found is not None and found.path is not None and found.approval.approved
        if found is not None and from_file and task.condition is not False and task.id not in done:
            applied.append((task.id, found))
    _audit_after_start(ledger, run_id, applied)
    return gates, problems


def with_approval_files(
    plan: Plan, verdicts: Mapping[str, Verdict], root: Path, operators: Sequence[Operator],
) -> dict[str, Verdict]:
    """``verdicts``, where a committed approval file settles a held task, with a reason naming it."""
    held = [t for t in plan.tasks if verdicts[t.id].decision is Decision.APPROVE]
    files = check_approval_files(root, operators)[0] if held else []
    result = dict(verdicts)
    for task in held if files else []:
        verdict = verdicts[task.id]
        digest = plan_digest(plan.mission.id, task, verdict.rank, plan.env)
        found = _newest(_covering(files, task.id, digest, verdict.rank, None), verdict.approvers, None)
        if found is not None:
            result[task.id] = replace(verdict, reasons=(*verdict.reasons, found.reason()))
    return result


def approval_file_problems(project: Project) -> tuple[list[str], list[Diagnostic]]:
    """Every file in approvals/ (workspace-relative) and a located error per file runs would ignore.

    Signatures are checked against the policy operators only when every policy file
    loaded: a broken policy would otherwise make every approval look unknown.
    """
    if any(d.location.path.startswith("policies/") for d in project.loaded.diagnostics):
        files, broken = read_approval_files(project.root)
    else:
        operators = effective_settings(project.workspace.policies).operators
        files, broken = check_approval_files(project.root, operators)
    return sorted({f.path for f in files} | {d.location.path for d in broken}), broken


def _gate(verdict: Verdict, digest: str, found: Signed | None, broken: Sequence[Diagnostic]) -> Gate:
    reasons = [str(r) for r in verdict.reasons if r.code not in SIGNED_CODES]
    if found is not None:
        reasons.append(str(found.reason()))
    hold: TaskStatus | None = None
    note: str | None = None
    if verdict.decision is Decision.BLOCKED:
        hold = TaskStatus.BLOCKED
        note = "; ".join(str(r) for r in verdict.reasons
                         if r.code in ("deny", "capability", "omen", "score")) or "blocked by policy"
    elif verdict.decision is Decision.APPROVE:
        if found is None:
            hold, note = TaskStatus.AWAITING_APPROVAL, _waiting_note(broken)
        elif not found.approval.approved:
            why = f": {found.approval.note}" if found.approval.note else ""
            hold, note = TaskStatus.FAILED, f"rejected by {found.approval.operator}{why}"
        else:
            note = f"approved by {found.approval.operator}"
    return Gate(verdict.rank, verdict.decision, tuple(reasons), digest, hold, note)


def _waiting_note(broken: Sequence[Diagnostic]) -> str:
    paths = sorted({d.location.path for d in broken})
    if not paths:
        return "waiting for an operator approval"
    return (f"waiting for an operator approval; ignored invalid approval file(s) {', '.join(paths)} "
            f"(`nexusmon validate {APPROVALS_DIR}/` says why)")


def _decision(
    task_id: str, digest: str, rank: Rank, run_id: str, stored: Sequence[ApprovalRow],
    files: Sequence[FiledApproval], operators: Sequence[Operator], approvers: Sequence[str],
    problems: list[str],
) -> Signed | None:
    """The newest valid approval or rejection for this task's digest, if any."""
    candidates = [ledger_approval(r) for r in stored if r.task_id == task_id]
    rejection = _rejection(candidates, run_id, operators)
    if rejection is not None:  # final for its run: no later approval, or edit of the task, undoes it
        return rejection
    valid = []
    for approval in candidates:
        if not applies_to(approval, plan_digest=digest, run_id=run_id):
            continue
        try:
            verify(approval, operators, rank)
        except ApprovalRefused as exc:
            problems.append(f"approval for task '{task_id}' refused: {exc}")
            continue
        valid.append(Signed(approval))
    return _newest([*valid, *_covering(files, task_id, digest, rank, problems)], approvers, problems)


def _rejection(candidates: Sequence[Approval], run_id: str, operators: Sequence[Operator]) -> Signed | None:
    """The newest verified rejection recorded for this run, whatever plan digest it was signed on."""
    found = None
    for approval in candidates:
        if approval.approved or approval.run_id != run_id:
            continue
        try:
            verify(approval, operators)
        except ApprovalRefused:
            continue
        if found is None or approval.at >= found.approval.at:
            found = Signed(approval)
    return found


def _covering(
    files: Sequence[FiledApproval], task_id: str, digest: str, rank: Rank, problems: list[str] | None,
) -> list[Signed]:
    """The approval files (their signatures already verified) on this task's plan digest and rank."""
    found = []
    for f in files:
        if f.approval.task_id != task_id or not applies_to(f.approval, plan_digest=digest, run_id=None):
            continue
        try:
            check_rank(f.approval, rank)
        except ApprovalRefused as exc:
            if problems is not None:
                problems.append(f"{f.path}: approval for task '{task_id}' refused: {exc}")
            continue
        found.append(Signed(f.approval, f.path))
    return found


def _newest(
    candidates: Sequence[Signed], approvers: Sequence[str], problems: list[str] | None,
) -> Signed | None:
    """The newest candidate by an operator policy lets settle the task (later wins a tie)."""
    found = None
    for signed in candidates:
        approval = signed.approval
        if approvers and approval.operator not in approvers:
            if problems is not None:
                problems.append(f"approval for task '{approval.task_id}' refused: {approval.operator} "
                                f"is not among the approvers named by policy ({', '.join(approvers)})")
            continue
        if found is None or approval.at >= found.approval.at:
            found = signed
    return found


def _audit_after_start(ledger: Ledger, run_id: str, applied: Sequence[tuple[str, Signed]]) -> None:
    """Append `approval.applied` records with the run's next batch, so they follow its start record."""
    pending = list(applied)
    if not pending:
        return

    def write() -> None:
        now = time.time()
        events = [(now, APPROVAL_APPLIED, run_id, task_id, applied_payload(s))
                  for task_id, s in pending]
        pending.clear()
        ledger.append_events(events)

    ledger.add_batch(write)


def applied_payload(signed: Signed) -> dict[str, Any]:
    """What `approval.recorded` says of a verdict, plus the file and the run it was signed in."""
    approval = signed.approval
    return {
        "verdict": approval.verdict, "operator": approval.operator, "public_key": approval.public_key,
        "rank": approval.rank, "plan_digest": approval.plan_digest, "note": approval.note,
        "mission": approval.mission, "at": approval.at, "file": signed.path,
        "signed_in_run": approval.run_id,
    }
