"""`nexusmon approve` and `nexusmon reject`: signed operator verdicts on a held task.

The task is found by compiling the run's mission again with the run's inputs
(secret values filled in from the environment, as `resume` does) and governing
it, so the signature covers the same plan digest the runner checks on `resume`.
A verdict is verified against the policy operators before anything is recorded;
a refusal is itself recorded in the audit trail. Only a task the run holds for
approval takes a verdict, once: a second identical verdict records nothing, and
a rejection is final for its run. The note is masked like every stored text.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import msgspec

from nexusmon.cli.load import project_of, replan, state_dir_of
from nexusmon.compile.digest import plan_digest
from nexusmon.compile.plan import Plan, PlannedTask
from nexusmon.engine.gates import approval_row, ledger_approval
from nexusmon.engine.governing import govern_plan
from nexusmon.engine.history import gov_state_from
from nexusmon.engine.project import Project
from nexusmon.engine.report import find_run
from nexusmon.engine.runsecrets import present_secrets, reveal_inputs
from nexusmon.errors import UsageError
from nexusmon.govern.approvals import (
    Approval,
    ApprovalRefused,
    Verdict,
    applies_to,
    sign,
    verify,
    write_approval_file,
)
from nexusmon.govern.facts import Verdict as TaskVerdict
from nexusmon.govern.gates import effective_settings
from nexusmon.govern.keys import (
    OperatorKeyError,
    canonical_token,
    default_key_path,
    load_private_key,
    public_token,
)
from nexusmon.spec.model import Decision, Operator, RunStatus, TaskStatus
from nexusmon.spec.schema_check import did_you_mean
from nexusmon.spec.workspace import shown_path
from nexusmon.store.ledger import LEDGER_FILE, Ledger
from nexusmon.store.records import ApprovalRow, RunRow, TaskRow
from nexusmon.store.runlock import acquire
from nexusmon.util.masking import Masker

UNDECLARED = "undeclared"  # operator name signed when no policy declares the key; verify refuses it
_DONE = {Verdict.APPROVE: "approved", Verdict.REJECT: "rejected"}
_UNFINISHED = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value, TaskStatus.AWAITING_APPROVAL.value)


class Target(msgspec.Struct, frozen=True):
    """The held task of a run, as governance sees it today."""

    run: RunRow
    plan: Plan
    task: PlannedTask
    verdict: TaskVerdict
    digest: str
    operators: tuple[Operator, ...]
    masker: Masker  # the run's secrets the environment holds, for the note


def verdict_options(fn: Any) -> Any:
    for decorator in reversed([
        click.argument("run_ref", metavar="RUN"),
        click.argument("task_id", metavar="TASK"),
        click.option("--note", default="", help="A note signed with the verdict."),
        click.option("--key", "key_file", type=click.Path(dir_okay=False),
                     help="Private key file (default: $XDG_CONFIG_HOME/nexusmon/operator.key)."),
    ]):
        fn = decorator(fn)
    return fn


@click.command()
@verdict_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Also write the approval as a file into DIR (relative to the workspace root), to commit.")
@click.pass_context
def approve(
    ctx: click.Context, run_ref: str, task_id: str, note: str, key_file: str | None,
    out_dir: str | None,
) -> int:
    """Sign an approval of TASK in RUN (an id, a unique prefix, or `last`) with your operator key.

    The approval covers the task's plan digest: change the task and it no
    longer applies. With --out the approval is also written as a file that
    lets any run of the same plan proceed (e.g. in CI) once committed.

    \b
    Example:
      nexusmon approve last ship --note "reviewed the diff" --out approvals/
      nexusmon resume last
    """
    project = project_of(ctx)
    with _ledger(ctx, project, run_ref) as ledger:
        target = _target(project, ledger, run_ref, task_id, Verdict.APPROVE)
        approval = _standing_approval(ledger, target)
        if approval is not None:
            click.echo(f"task '{approval.task_id}' of run {approval.run_id} is already approved by "
                       f"{approval.operator}; continue with: nexusmon resume {approval.run_id}")
        else:
            approval = _recorded_approval(ledger, target, note, key_file)
            click.echo(f"approved task '{approval.task_id}' of run {approval.run_id} as {approval.operator} "
                       f"(rank {approval.rank}); continue with: nexusmon resume {approval.run_id}")
    if out_dir is not None:
        written = write_approval_file(_under_root(project.root, out_dir), approval)
        read_by_runs = written.parent.resolve() == (project.root / "approvals").resolve()
        click.echo(f"wrote {shown_path(project.root, written)} " + (
            "(commit it so runs of the same plan proceed)" if read_by_runs else
            "(runs read approval files only from approvals/: move it there and commit it "
            "so runs of the same plan proceed)"))
    return 0


@click.command()
@verdict_options
@click.pass_context
def reject(ctx: click.Context, run_ref: str, task_id: str, note: str, key_file: str | None) -> int:
    """Sign a rejection of TASK in RUN: the task fails and the run ends as failed.

    \b
    Example:
      nexusmon reject last ship --note "not during the freeze"
    """
    project = project_of(ctx)
    with _ledger(ctx, project, run_ref) as ledger:
        target = _target(project, ledger, run_ref, task_id, Verdict.REJECT)
        rejection = _rejection(ledger, target)
        if rejection is not None:
            click.echo(f"task '{rejection.task_id}' of run {rejection.run_id} is already rejected by "
                       f"{rejection.operator}; the run is failed")
            return 0
        with acquire(ledger.state_dir, target.run.run_id):  # ending a run a live runner drives would race it
            _refuse_unheld(ledger, target, Verdict.REJECT)
            approval = _signed(ledger, target, Verdict.REJECT, note, key_file)
            with ledger.transaction():
                ledger.add_approval(approval_row(approval))
                _end_run(ledger, target, approval)
    click.echo(f"rejected task '{approval.task_id}' of run {approval.run_id} as {approval.operator}; "
               "the run is failed")
    return 0


def _ledger(ctx: click.Context, project: Project, run_ref: str) -> Ledger:
    """The existing ledger: a verdict needs a run, so nothing is created here."""
    state_dir = state_dir_of(ctx, project)
    if not (state_dir / LEDGER_FILE).is_file():
        raise UsageError(f"no run '{run_ref}' (nothing has run yet)")
    return Ledger(state_dir)


def _under_root(root: Path, directory: str) -> Path:
    path = Path(directory)
    return path if path.is_absolute() else root / path


# ------------------------------------------------------------------ finding the task


def _target(project: Project, ledger: Ledger, run_ref: str, task_id: str, verdict: Verdict) -> Target:
    """The task as the runner will see it on `resume`; a usage error unless its decision is approve."""
    run = find_run(ledger, run_ref)
    inputs = reveal_inputs(ledger, run, os.environ, purpose=f"{verdict.value} its tasks")
    plan = replan(project, run, inputs)
    task = plan.task(task_id)
    if task is None:
        hint = did_you_mean(task_id, [t.id for t in plan.tasks])
        raise UsageError(f"run {run.run_id} (mission '{run.mission}') has no task '{task_id}'"
                         + (f" ({hint})" if hint else ""))
    settings = effective_settings(project.workspace.policies)
    governed = govern_plan(plan, project, gov_state_from(ledger, plan.mission.id), settings)[task.id]
    if governed.decision is not Decision.APPROVE:
        raise UsageError(f"task '{task.id}' does not need approval (decision {governed.decision.value})")
    digest = plan_digest(plan.mission.id, task, governed.rank, plan.env)
    masker = Masker(present_secrets(plan, os.environ).values())
    return Target(run, plan, task, governed, digest, settings.operators, masker)


def _rejection(ledger: Ledger, target: Target) -> ApprovalRow | None:
    """The recorded rejection of the task in this run: final, whatever its plan digest."""
    rows = ledger.approvals(run_id=target.run.run_id, task_id=target.task.id)
    return next((row for row in rows if row.verdict == Verdict.REJECT.value), None)


def _refuse_unheld(ledger: Ledger, target: Target, verdict: Verdict) -> None:
    """A usage error unless the run holds the task for approval now (after a rejection, naming it)."""
    rejection = _rejection(ledger, target)
    if rejection is not None:
        raise UsageError(f"task '{rejection.task_id}' of run {rejection.run_id} was rejected by "
                         f"{rejection.operator}; a rejection is final: start a new run")
    row = _task_row(ledger, target)
    status = row.status if row is not None else "not started"
    where = f"task '{target.task.id}' of run {target.run.run_id}"
    if row is not None and TaskStatus(row.status).ok:
        raise UsageError(f"{where} already {status}; there is nothing to {verdict.value}")
    if status != TaskStatus.AWAITING_APPROVAL.value:
        raise UsageError(f"{where} is {status}, not awaiting approval; only a held task can be "
                         f"{_DONE[verdict]}")
    if verdict is Verdict.APPROVE and row is not None and row.plan_digest and row.plan_digest != target.digest:
        # The operator decides on what the run held; signing the edited task instead would
        # approve something nobody was shown (`resume` holds the edited task for a new look).
        raise UsageError(
            f"{where} changed since the run held it (plan digest {row.plan_digest[:19]}... then, "
            f"{target.digest[:19]}... now: its mission file, inputs or a policy changed); "
            f"`nexusmon resume {shlex.quote(target.run.run_id)}` holds it as it is now, to approve that"
        )


def _standing_approval(ledger: Ledger, target: Target) -> Approval | None:
    """The approval already recorded in this run that the runner will accept for the task as it
    is today; a usage error when the task takes no approval (see `_refuse_unheld`)."""
    _refuse_unheld(ledger, target, Verdict.APPROVE)
    for row in reversed(ledger.approvals(run_id=target.run.run_id, task_id=target.task.id)):
        approval = ledger_approval(row)
        if not applies_to(approval, plan_digest=target.digest, run_id=target.run.run_id):
            continue
        try:
            _check_approvers(target, verify(approval, target.operators, target.verdict.rank))
        except ApprovalRefused:
            continue  # e.g. its operator lost the right since: a new approval is needed
        return approval
    return None


def _task_row(ledger: Ledger, target: Target) -> TaskRow | None:
    rows = [r for r in ledger.task_rows(target.run.run_id) if r.task_id == target.task.id]
    return rows[0] if rows else None


# ------------------------------------------------------------------ signing


def _signed(ledger: Ledger, target: Target, verdict: Verdict, note: str, key_file: str | None) -> Approval:
    """A signed verdict that policy accepts; a refusal is audited, then raised."""
    key = load_private_key(Path(key_file) if key_file else default_key_path(os.environ))
    holders = _holders(target.operators, public_token(key))
    approval = sign(
        key, run_id=target.run.run_id, task_id=target.task.id, mission=target.plan.mission.id,
        plan_digest=target.digest, verdict=verdict, operator=holders[0].name if holders else UNDECLARED,
        rank=target.verdict.rank, note=target.masker.mask(note),
    )
    try:
        operator = verify(approval, target.operators, target.verdict.rank)
        _check_approvers(target, operator)
    except ApprovalRefused as exc:
        ledger.append_event("approval.refused", {**_payload(approval), "reason": str(exc)},
                            approval.run_id, approval.task_id)
        raise ApprovalRefused(f"cannot {verdict.value} task '{target.task.id}': {exc}") from None
    return approval


def _recorded_approval(ledger: Ledger, target: Target, note: str, key_file: str | None) -> Approval:
    approval = _signed(ledger, target, Verdict.APPROVE, note, key_file)
    with ledger.transaction():
        ledger.add_approval(approval_row(approval))
        ledger.append_event("approval.recorded", _payload(approval), approval.run_id, approval.task_id)
    return approval


def _holders(operators: Sequence[Operator], token: str) -> list[Operator]:
    """Operators whose declared public key is ``token``."""
    found = []
    for operator in operators:
        try:
            if canonical_token(operator.public_key) == token:
                found.append(operator)
        except OperatorKeyError:
            continue  # a malformed policy key is reported by `validate`
    return found


def _check_approvers(target: Target, operator: Operator) -> None:
    named = target.verdict.approvers
    if named and operator.name not in named:
        raise ApprovalRefused(f"policy names {', '.join(named)} as approvers of this task, "
                              f"not {operator.name}")


def _payload(approval: Approval) -> dict[str, Any]:
    return {
        "verdict": approval.verdict, "operator": approval.operator, "public_key": approval.public_key,
        "rank": approval.rank, "plan_digest": approval.plan_digest, "note": approval.note,
        "mission": approval.mission, "at": approval.at,
    }


# ------------------------------------------------------------------ ending a rejected run


def _end_run(ledger: Ledger, target: Target, approval: Approval) -> None:
    """Fail the rejected task, cancel what had not finished, and end the run as failed."""
    now = time.time()
    reason = f"rejected by {approval.operator}" + (f": {approval.note}" if approval.note else "")
    rows = _changed_rows(ledger.task_rows(target.run.run_id), target.task.id, reason, now)
    error = f"task '{target.task.id}' {reason}"
    ledger.save_tasks(rows, [
        ("rejection.recorded", approval.run_id, approval.task_id, _payload(approval)),
        ("run.finished", approval.run_id, None,
         {"mission": approval.mission, "status": RunStatus.FAILED.value, "error": error}),
    ])
    ledger.update_run(target.run.run_id, status=RunStatus.FAILED.value, finished_at=now, error=error)


def _changed_rows(rows: list[TaskRow], task_id: str, reason: str, now: float) -> list[TaskRow]:
    changed = [msgspec.structs.replace(r, status=TaskStatus.FAILED.value, error=reason, finished_at=now,
                                   failure_kind="rejected")
               for r in rows if r.task_id == task_id]
    for row in rows:
        if row.task_id != task_id and row.status in _UNFINISHED:
            changed.append(msgspec.structs.replace(
                row, status=TaskStatus.CANCELLED.value, finished_at=now,
                error=f"cancelled: task '{task_id}' was rejected"))
    return changed
