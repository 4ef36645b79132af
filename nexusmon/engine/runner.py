"""`run` and `resume`: govern the plan, schedule it, record everything, report."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from nexusmon.compile.plan import Plan
from nexusmon.engine.cache import SourceHasher
from nexusmon.engine.context import RunContext, TaskOutcome, mission_env
from nexusmon.engine.execute import Executor
from nexusmon.engine.gates import gates_for
from nexusmon.engine.governing import govern_plan
from nexusmon.engine.history import gov_state_from
from nexusmon.engine.hooks import Progress, RunHooks
from nexusmon.engine.interrupts import Interrupts
from nexusmon.engine.lineage import git_commit, run_lineage
from nexusmon.engine.project import Project
from nexusmon.engine.recorder import Recorder
from nexusmon.engine.runsecrets import MASKED_INPUTS_EVENT, hide_secrets, read_secrets
from nexusmon.engine.scheduler import Gate, Options, Scheduler
from nexusmon.errors import NexusmonError, UsageError
from nexusmon.govern.facts import Verdict
from nexusmon.govern.gates import effective_settings
from nexusmon.spec.model import RunStatus, TaskStatus
from nexusmon.store.ids import new_run_id
from nexusmon.store.ledger import LEDGER_FILE, Ledger
from nexusmon.store.records import RunRow, TaskRow
from nexusmon.store.runlock import acquire
from nexusmon.store.vault import Vault
from nexusmon.util.lazy import asyncio
from nexusmon.util.leftovers import describe, stop_leftovers
from nexusmon.util.masking import Masker

LEFTOVERS_EVENT = "run.leftovers_stopped"
EXIT_CODES = {
    RunStatus.SUCCEEDED: 0, RunStatus.FAILED: 1, RunStatus.AWAITING_APPROVAL: 3,
    RunStatus.BLOCKED: 4, RunStatus.INTERRUPTED: 130,
}


class RunRequest(Struct):
    """What the caller asks of a run: flags, environment, progress output, parent run."""

    concurrency: int | None = None
    keep_going: bool = False
    use_cache: bool = True
    progress: Progress | None = None
    warn: Callable[[str], None] | None = None  # one line per omen a task carries (SPEC: "run prints a warning")
    parent_run_id: str | None = None
    parent_task_id: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def options(self) -> dict[str, Any]:
        """The flags recorded with the run, so that `resume` keeps them."""
        return {"keep_going": self.keep_going, "use_cache": self.use_cache, "concurrency": self.concurrency}

    def continuing(self, recorded: Mapping[str, Any]) -> RunRequest:
        """This request for resuming a run started with ``recorded`` options: a flag given
        now adds to them (``--keep-going``, ``--no-cache``), ``--concurrency`` replaces."""
        return replace(
            self,
            keep_going=self.keep_going or bool(recorded.get("keep_going")),
            use_cache=self.use_cache and recorded.get("use_cache", True) is not False,
            concurrency=self.concurrency or recorded.get("concurrency"),
        )


class RunResult(Struct, frozen=True):
    """How a run ended: its id, status and the error that stopped it."""

    run_id: str
    status: RunStatus
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def start_run(project: Project, plan: Plan, state_dir: Path, request: RunRequest) -> RunResult:
    """Record a new run of ``plan`` and drive it to its end (one process per run: see runlock)."""
    secrets = read_secrets(plan, request.environ)  # refuse before anything is recorded
    inputs, holes = hide_secrets(plan.inputs, Masker(secrets.values()), secrets)
    commit = git_commit(project.root)
    run_id = new_run_id()
    with Interrupts() as interrupts, acquire(state_dir, run_id), Ledger(state_dir) as ledger:
        interrupts.raise_if_received()  # nothing is recorded yet: just stop
        with ledger.transaction():
            ledger.create_run(RunRow(
                run_id=run_id, mission=plan.mission.id, status=RunStatus.RUNNING.value,
                started_at=time.time(), mission_file=plan.mission.path,
                mission_digest=plan.mission.digest, inputs=inputs, git_commit=commit,
                parent_run_id=request.parent_run_id, parent_task_id=request.parent_task_id,
                options=request.options(),
            ))
            if holes:
                ledger.append_event(MASKED_INPUTS_EVENT, {"mission": plan.mission.id, "holes": holes},
                                    run_id=run_id)
        # From here on every way out records how the run ended: signals only set a flag.
        return _execute(project, plan, ledger, run_id, request, {}, "run.started", secrets, interrupts)


def resume_run(project: Project, plan: Plan, state_dir: Path, run: RunRow, request: RunRequest) -> RunResult:
    """Drive an existing run to its end, keeping what succeeded; RunLocked if a live process drives it."""
    secrets = read_secrets(plan, request.environ)
    with Interrupts() as interrupts, acquire(state_dir, run.run_id), Ledger(state_dir) as ledger:
        interrupts.raise_if_received()
        current = ledger.get_run(run.run_id)
        if current is None:  # removed while we waited for the lock
            raise UsageError(f"no run '{run.run_id}'")
        if current.status == RunStatus.SUCCEEDED.value:  # final: its record stays as it ended
            if request.warn is not None:
                request.warn(f"run {run.run_id} already succeeded; there is nothing to resume")
            return RunResult(run.run_id, RunStatus.SUCCEEDED, None)
        _stop_leftovers(ledger, run, request.warn)  # its runner is dead: we hold the lock
        rows = {r.task_id: r for r in ledger.task_rows(run.run_id)}
        kept = {tid: r for tid, r in rows.items()
                if TaskStatus(r.status).ok and plan.task(tid) is not None}
        _cancel_removed(ledger, plan, [r for tid, r in rows.items() if plan.task(tid) is None])
        request = request.continuing(run.options)
        ledger.update_run(run.run_id, status=RunStatus.RUNNING.value, options=request.options())
        return _execute(project, plan, ledger, run.run_id, request, kept, "run.resumed", secrets,
                        interrupts)


def child_run_to_continue(state_dir: Path, plan: Plan, request: RunRequest) -> RunRow | None:
    """For a `mission` task's child run: the run this same parent task started before (the
    parent is being resumed or retried), when it ended with the same inputs and was not
    blocked. Continuing it keeps what it did and what operators approved or finished in it
    (`resume` of a succeeded run re-runs nothing); a new run would hold again."""
    if not (request.parent_run_id and request.parent_task_id and (state_dir / LEDGER_FILE).is_file()):
        return None
    with Ledger(state_dir) as ledger:
        earlier = ledger.child_run(request.parent_run_id, request.parent_task_id, plan.mission.id)
    resumable = (RunStatus.AWAITING_APPROVAL.value, RunStatus.INTERRUPTED.value, RunStatus.FAILED.value,
                 RunStatus.SUCCEEDED.value)
    if earlier is None or earlier.status not in resumable or dict(earlier.inputs) != dict(plan.inputs):
        return None
    return earlier


def _stop_leftovers(ledger: Ledger, run: RunRow, warn: Callable[[str], None] | None) -> None:
    """Task processes a killed runner left running (in sessions of their own) must not run
    beside the copies this resume starts: they are stopped, recorded and reported."""
    stopped = stop_leftovers(run.run_id)
    if stopped:
        ledger.append_event(LEFTOVERS_EVENT, {"mission": run.mission, "processes": [
            {"pid": s.pid, "task": s.task_id} for s in stopped]}, run_id=run.run_id)
        if warn is not None:
            warn(describe(run.run_id, stopped))


def _cancel_removed(ledger: Ledger, plan: Plan, removed: Sequence[TaskRow]) -> None:
    """Tasks of the run that its mission file no longer has and that did not succeed are
    cancelled: the run finishes as the file says now, and its status no longer hangs on them."""
    why = "not in the mission file any more"
    ended = [replace(row, status=TaskStatus.CANCELLED.value, error=why)
             for row in removed if not TaskStatus(row.status).ok]
    if ended:
        ledger.save_tasks(ended, [("task.cancelled", row.run_id, row.task_id,
                                   {"mission": plan.mission.id, "status": row.status, "note": why})
                                  for row in ended])


def _execute(
    project: Project, plan: Plan, ledger: Ledger, run_id: str, request: RunRequest,
    kept: Mapping[str, TaskRow], event: str, secrets: Mapping[str, str], interrupts: Interrupts,
) -> RunResult:
    masker = Masker(secrets.values())
    recorder: Recorder | None = None
    try:
        recorder = Recorder(ledger, run_id, plan.mission.id, masker)
        status, error = _govern_and_schedule(project, plan, request, kept, event, recorder, secrets,
                                             interrupts)
    except BaseException as exc:
        # A bug or a KeyboardInterrupt raised by a task: the run must not stay "running" forever.
        status = RunStatus.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        error = masker.mask(_crash_reason(exc))
        if isinstance(exc, NexusmonError):
            exc.run_id = run_id
        try:
            _finish(recorder, ledger, plan, run_id, status, error)
        except Exception:  # noqa: BLE001 - e.g. an audit trail that cannot be written: end the row at least
            with contextlib.suppress(Exception):
                ledger.update_run(run_id, status=status.value, finished_at=time.time(), error=error)
        raise
    _finish(recorder, ledger, plan, run_id, status, error)
    return RunResult(run_id, status, error)


def _crash_reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, NexusmonError):  # a located, explained failure (a damaged ledger, ...)
        return " ".join(str(exc).split())
    detail = str(exc).strip().splitlines()
    return f"internal error: {type(exc).__name__}" + (f": {detail[0]}" if detail else "")


def _finish(recorder: Recorder | None, ledger: Ledger, plan: Plan, run_id: str, status: RunStatus,
            error: str | None) -> None:
    if recorder is not None:
        if status is not RunStatus.SUCCEEDED:  # no task may outlive its run as `running`
            recorder.end_running(TaskStatus.CANCELLED.value, error or f"the run ended {status.value}")
        recorder.event("run.finished", {"mission": plan.mission.id, "status": status.value, "error": error})
        recorder.flush()
    ledger.update_run(run_id, status=status.value, finished_at=time.time(), error=error)


def _govern_and_schedule(
    project: Project, plan: Plan, request: RunRequest, kept: Mapping[str, TaskRow], event: str,
    recorder: Recorder, secrets: Mapping[str, str], interrupts: Interrupts,
) -> tuple[RunStatus, str | None]:
    """Decide every task, run what may run; the run's status and error."""
    ledger, run_id, masker = recorder.ledger, recorder.run_id, recorder.masker
    env = mission_env(plan, run_id, project.root, secrets)
    run_ctx = RunContext(plan, run_id, project.root, secrets, env)
    vault = Vault(ledger, project.root)
    policies = project.workspace.policies
    settings = effective_settings(policies)
    # Task history feeds only the score; a run scores tasks only where a policy enforces it.
    scoring = "scoring" in settings.origins
    state = gov_state_from(ledger, plan.mission.id if scoring else None)
    verdicts = govern_plan(plan, project, state, settings, scored=False)
    _warn_omens(verdicts, request.warn)
    gates, problems = gates_for(plan, verdicts, run_id, ledger, settings.operators, project.root)
    recorder.event(event, {"mission": plan.mission.id, "inputs": dict(plan.inputs),
                           "mission_digest": plan.mission.digest, "tasks": len(plan.tasks)})
    for problem in problems:
        recorder.event("approval.refused", {"problem": problem})
    _seed(recorder, plan, gates, kept, masker)
    scratch = ledger.state_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    base_env = _base_env(request.environ, env, secrets, plan, run_id, project.root, ledger.state_dir)
    hasher = SourceHasher(project.root, ledger.state_dir)
    executor = Executor(run_ctx, base_env,
                        masker, scratch, vault, run_lineage(plan, run_id, ledger), hasher)
    hooks = RunHooks(ledger, vault, recorder, hasher, plan.mission.id,
                     {**plan.env}, _best_effort(request.progress))
    constraints = plan.mission.constraints
    options = Options(
        concurrency=request.concurrency or constraints.concurrency or project.workspace.settings.concurrency
        or os.cpu_count() or 2,
        keep_going=request.keep_going, use_cache=request.use_cache,
        deadline=time.monotonic() + constraints.max_time_seconds if constraints.max_time_seconds else None,
        max_cost_usd=constraints.max_cost_usd,
    )
    outcomes = {tid: TaskOutcome(TaskStatus(r.status), dict(r.outputs), [dict(a) for a in r.artifacts])
                for tid, r in kept.items()}
    scheduler = Scheduler(plan, gates, _worker_lookup(project), executor, hooks, options, outcomes)
    try:
        _drive(scheduler, interrupts)
    finally:
        hooks.hasher.save()
    status = _run_status(scheduler)
    return status, scheduler.stop_reason if status is not RunStatus.SUCCEEDED else None


def _warn_omens(verdicts: Mapping[str, Verdict], warn: Callable[[str], None] | None) -> None:
    """A task with repeated failures behind it is worth a line before the run starts."""
    for task_id, verdict in verdicts.items():
        for reason in verdict.reasons:
            if reason.code == "omen" and warn is not None:
                warn(f"task '{task_id}': {reason}")


def _seed(recorder: Recorder, plan: Plan, gates: Mapping[str, Gate], kept: Mapping[str, TaskRow],
          masker: Masker) -> None:
    """Every task gets its row up front (plan order), so `show` and `resume` know them all.

    The rows are written before the first task that runs a worker starts (see
    engine.hooks), else with the recorder's first batch: an up-to-date re-run writes each
    row once, not twice."""
    recorder.seed(kept)
    for task in plan.tasks:
        if task.id in kept:
            continue
        gate = gates[task.id]
        recorder.plan(
            task.id, status="pending", rank=gate.rank.name, decision=gate.decision.value,
            reasons=tuple(masker.mask(r) for r in gate.reasons), plan_digest=gate.digest, attempts=0, outputs={}, artifacts=(),
            error=None, failure_kind=None, started_at=None, finished_at=None, duration_s=None,
        )


def _drive(scheduler: Scheduler, interrupts: Interrupts) -> None:
    """Run the scheduler; SIGINT, SIGTERM and SIGHUP interrupt it cleanly.

    The event loop starts only when a task must run a worker (see Scheduler.prepare)."""
    async def main() -> None:
        interrupts.attach(asyncio.get_running_loop(), scheduler.interrupt)
        try:
            await scheduler.run()
        finally:
            interrupts.detach()

    try:
        if scheduler.prepare():
            asyncio.run(main())
        elif interrupts.received is not None:
            scheduler.interrupt()
        scheduler.finish()
    finally:
        scheduler.hooks.idle()


def _best_effort(progress: Progress | None) -> Progress | None:
    """Progress output that cannot fail the run (a closed terminal or pipe is not a task failure)."""
    if progress is None:
        return None
    shown = progress

    def report(*args: Any) -> None:
        with contextlib.suppress(OSError):
            shown(*args)
    return report


def _run_status(scheduler: Scheduler) -> RunStatus:
    statuses = {o.status for o in scheduler.outcomes.values()}
    if scheduler.interrupted:
        return RunStatus.INTERRUPTED
    if TaskStatus.FAILED in statuses or scheduler.stop_reason:
        return RunStatus.FAILED
    if TaskStatus.BLOCKED in statuses:
        return RunStatus.BLOCKED
    if TaskStatus.AWAITING_APPROVAL in statuses:
        return RunStatus.AWAITING_APPROVAL
    return RunStatus.SUCCEEDED


def _worker_lookup(project: Project) -> Any:
    def lookup(name: str) -> Any:
        worker = project.registry.get(name)
        if worker is None:
            raise UsageError(f"unknown worker '{name}'")
        return worker
    return lookup


def _base_env(
    environ: Mapping[str, str], env: Mapping[str, str], secrets: Mapping[str, str], plan: Plan,
    run_id: str, root: Path, state_dir: Path,
) -> dict[str, str]:
    base = {k: v for k, v in environ.items() if not k.startswith("NEXUSMON_")}
    base.update(env)
    base.update(secrets)
    base.update({
        "NEXUSMON_RUN_ID": run_id, "NEXUSMON_MISSION": plan.mission.id, "NEXUSMON_WORKSPACE": str(root),
        "NEXUSMON_STATE_DIR": str(state_dir),
    })
    return base
