"""`run` and `resume`: govern the plan, schedule it, record everything, report."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Callable

from msgspec import Struct, field

from nexusmon.compile.plan import Plan
from nexusmon.engine.cache import SourceHasher
from nexusmon.engine.context import RunContext, TaskOutcome, mission_env
from nexusmon.engine.execute import Executor
from nexusmon.engine.gates import gates_for
from nexusmon.engine.governing import govern_plan
from nexusmon.engine.history import gov_state_from
from nexusmon.engine.hooks import Progress, RunHooks
from nexusmon.engine.project import Project
from nexusmon.engine.recorder import Recorder
from nexusmon.engine.scheduler import Gate, Options, Scheduler
from nexusmon.errors import StateError, UsageError
from nexusmon.govern.gates import effective_settings
from nexusmon.spec.model import RunStatus, TaskStatus
from nexusmon.store.ids import new_run_id
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import RunRow, TaskRow
from nexusmon.store.runlock import acquire
from nexusmon.store.vault import Vault
from nexusmon.util.masking import MASK, Masker
from nexusmon.workers.mission import inherited_secret_names

EXIT_CODES = {
    RunStatus.SUCCEEDED: 0, RunStatus.FAILED: 1, RunStatus.AWAITING_APPROVAL: 3,
    RunStatus.BLOCKED: 4, RunStatus.INTERRUPTED: 130,
}
#: Audit event saying where a run's stored inputs had a secret's value masked.
MASKED_INPUTS_EVENT = "run.inputs_masked"


class RunRequest(Struct):
    """What the caller asks of a run: flags, environment, progress output, parent run."""

    concurrency: int | None = None
    keep_going: bool = False
    use_cache: bool = True
    progress: Progress | None = None
    parent_run_id: str | None = None
    parent_task_id: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


class RunResult(Struct, frozen=True):
    """How a run ended: its id, status and the error that stopped it."""

    run_id: str
    status: RunStatus
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def read_secrets(plan: Plan, environ: Mapping[str, str]) -> dict[str, str]:
    """The mission's declared secrets by name, plus those a parent run declared to this child
    run (named in NEXUSMON_PARENT_SECRETS), so that they are masked here too."""
    missing = [name for name in plan.mission.secrets if name not in environ]
    if missing:
        raise UsageError(
            f"mission '{plan.mission.id}' declares secret(s) {', '.join(missing)} that are not set "
            "in the environment"
        )
    declared = {name: environ[name] for name in plan.mission.secrets}
    inherited = {name: environ[name] for name in inherited_secret_names(environ) if name not in declared}
    return {**declared, **inherited}


def git_commit(root: Path) -> str | None:
    """HEAD of the git repository holding ``root`` (also when ``root`` is a folder inside it)."""
    resolved = root.resolve()
    if not any((folder / ".git").exists() for folder in (resolved, *resolved.parents)):
        return None  # not a repository: no git process spawned
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


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
        if ledger.get_run(run.run_id) is None:  # removed while we waited for the lock
            raise UsageError(f"no run '{run.run_id}'")
        rows = {r.task_id: r for r in ledger.task_rows(run.run_id)}
        kept = {tid: r for tid, r in rows.items()
                if TaskStatus(r.status).ok and plan.task(tid) is not None}
        ledger.update_run(run.run_id, status=RunStatus.RUNNING.value)
        return _execute(project, plan, ledger, run.run_id, request, kept, "run.resumed", secrets,
                        interrupts)


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
        with contextlib.suppress(Exception):
            _finish(recorder, ledger, plan, run_id, status, error)
        raise
    _finish(recorder, ledger, plan, run_id, status, error)
    return RunResult(run_id, status, error)


def _crash_reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    detail = str(exc).strip().splitlines()
    return f"internal error: {type(exc).__name__}" + (f": {detail[0]}" if detail else "")


def _finish(recorder: Recorder | None, ledger: Ledger, plan: Plan, run_id: str, status: RunStatus,
            error: str | None) -> None:
    if recorder is not None:
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
    verdicts = govern_plan(plan, project, gov_state_from(ledger), settings)
    gates, problems = gates_for(plan, verdicts, run_id, ledger, settings.operators, project.root)
    recorder.event(event, {"mission": plan.mission.id, "inputs": dict(plan.inputs),
                           "mission_digest": plan.mission.digest, "tasks": len(plan.tasks)})
    for problem in problems:
        recorder.event("approval.refused", {"problem": problem})
    _seed(recorder, plan, gates, kept, masker)
    scratch = ledger.state_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    base_env = _base_env(request.environ, env, secrets, plan, run_id, project.root, ledger.state_dir)
    executor = Executor(run_ctx, base_env,
                        masker, scratch, vault, _lineage(plan, run_id, ledger))
    hooks = RunHooks(ledger, vault, recorder, SourceHasher(project.root, ledger.state_dir), plan.mission.id,
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
    _drive(scheduler, interrupts)
    status = _run_status(scheduler)
    return status, scheduler.stop_reason if status is not RunStatus.SUCCEEDED else None


def _seed(recorder: Recorder, plan: Plan, gates: Mapping[str, Gate], kept: Mapping[str, TaskRow],
          masker: Masker) -> None:
    """Every task gets its row up front (plan order), so `show` and `resume` know them all."""
    recorder.seed(kept)
    for task in plan.tasks:
        if task.id in kept:
            continue
        gate = gates[task.id]
        recorder.update(
            task.id, status="pending", rank=gate.rank.name, decision=gate.decision.value,
            reasons=tuple(masker.mask(r) for r in gate.reasons), plan_digest=gate.digest, attempts=0, outputs={}, artifacts=(),
            error=None, failure_kind=None, started_at=None, finished_at=None, duration_s=None,
        )
    recorder.flush()


def _drive(scheduler: Scheduler, interrupts: Interrupts) -> None:
    """Run the scheduler; SIGINT, SIGTERM and SIGHUP interrupt it cleanly."""
    async def main() -> None:
        interrupts.attach(asyncio.get_running_loop(), scheduler.interrupt)
        try:
            await scheduler.run()
        finally:
            interrupts.detach()

    asyncio.run(main())


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP while a run is driven: noted, never fatal on the spot.

    Installed before the run's row exists and kept until the run is recorded as
    ended, so no signal can end the process in between and leave the run
    ``running``.  While the scheduler runs, a signal interrupts it (nothing new
    starts, running tasks' process groups are killed) and the run ends
    ``interrupted``.  SIGHUP (the terminal closed, the ssh session dropped)
    also points stdout and stderr at /dev/null when they were a terminal, so
    that the runner's last words cannot fail it.  A signal the caller ignores
    stays ignored (``nohup nexusmon run ...`` survives a hangup).  Handlers can
    only be set in the main thread; elsewhere the caller's handling stays.
    """

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name))

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._ttys: tuple[int, ...] = ()
        self._target: tuple[asyncio.AbstractEventLoop, Callable[[], None]] | None = None

    def __enter__(self) -> Interrupts:  # noqa: PYI034 (no typing_extensions dependency)
        if threading.current_thread() is threading.main_thread():
            self._ttys = tuple(fd for fd in (1, 2) if _isatty(fd))
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup`, `cmd &` in a script
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def raise_if_received(self) -> None:
        """Before the run is recorded, a signal simply stops the command (exit status 130)."""
        if self.received is not None:
            raise KeyboardInterrupt

    def attach(self, loop: asyncio.AbstractEventLoop, interrupt: Callable[[], None]) -> None:
        """From now on a signal calls ``interrupt`` in ``loop`` (at once if one came already)."""
        self._target = (loop, interrupt)
        if self.received is not None:
            interrupt()

    def detach(self) -> None:
        self._target = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        if signum == getattr(signal, "SIGHUP", None):
            self._leave_terminal()
        target = self._target
        if target is not None:
            # The handler runs between two bytecodes of the loop's own thread: let the loop
            # call interrupt() at a safe point rather than in the middle of the scheduler.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                target[0].call_soon_threadsafe(target[1])

    def _leave_terminal(self) -> None:
        if not self._ttys:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in self._ttys:
                os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        self._ttys = ()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


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


def _lineage(plan: Plan, run_id: str, ledger: Ledger) -> dict[str, Any]:
    run = ledger.get_run(run_id)
    return {
        "run_id": run_id, "mission": plan.mission.id, "mission_file": plan.mission.path,
        "mission_digest": plan.mission.digest, "git_commit": run.git_commit if run else None,
    }


# -- secret values given as inputs ----------------------------------------------------------
# A run's inputs are stored with every secret value masked.  So that `resume` can run
# with the real values, the run records where each mask stands (the n-th string of
# the inputs, in a fixed walk order; the offset in the masked string; the secret's
# name), never a value, and `reveal_inputs` puts the secrets' current values back.


def hide_secrets(
    inputs: Mapping[str, Any], masker: Masker, secrets: Mapping[str, str],
) -> tuple[dict[str, Any], list[list[Any]]]:
    """``inputs`` with secret values masked, and where each mask stands."""
    pattern = masker.pattern
    if pattern is None:
        return dict(inputs), []
    names = {value: name for name, value in secrets.items()}
    holes: list[list[Any]] = []

    def hide(index: int, text: str) -> str:
        spans: list[list[Any]] = []
        shift = 0
        for match in pattern.finditer(text):
            spans.append([match.start() - shift, names[match.group()]])
            shift += len(match.group()) - len(MASK)
        if not spans:
            return text
        holes.append([index, spans])
        return masker.mask(text)

    hidden: dict[str, Any] = _map_strings(dict(inputs), hide)
    return hidden, holes


def reveal_inputs(ledger: Ledger, run: RunRow, environ: Mapping[str, str]) -> dict[str, Any]:
    """A run's inputs with the secret values masked in the ledger filled in again from ``environ``."""
    rows = ledger.query("SELECT payload FROM audit WHERE run_id = ? AND kind = ? ORDER BY seq LIMIT 1",
                        (run.run_id, MASKED_INPUTS_EVENT))
    if not rows:
        return dict(run.inputs)
    holes = {int(index): spans for index, spans in json.loads(rows[0][0])["holes"]}

    def reveal(index: int, text: str) -> str:
        pieces: list[str] = []
        pos = 0
        for offset, name in holes.get(index, ()):
            if text[offset:offset + len(MASK)] != MASK:
                raise StateError(f"run {run.run_id}: the masked inputs do not match their record")
            if name not in environ:
                raise UsageError(f"run {run.run_id} was given the value of secret {name} as an input; "
                                 f"set {name} in the environment to resume it")
            pieces += [text[pos:offset], environ[name]]
            pos = offset + len(MASK)
        return "".join(pieces) + text[pos:] if pieces else text

    revealed: dict[str, Any] = _map_strings(dict(run.inputs), reveal)
    return revealed


def _map_strings(value: Any, change: Callable[[int, str], str]) -> Any:
    """A copy of a JSON-like value with each string (keys too, numbered in walk order) changed."""
    numbers = itertools.count()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return change(next(numbers), item)
        if isinstance(item, Mapping):
            return {walk(k): walk(v) for k, v in item.items()}  # the key is walked first
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        return item

    return walk(value)
