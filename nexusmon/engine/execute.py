"""One task from ready to finished: render, run attempts with retries, store artifacts."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct, field, structs

from nexusmon.compile.params import ParamsComplaint, params_complaint
from nexusmon.compile.plan import Plan, PlannedTask
from nexusmon.compile.render import FieldError, render_fields
from nexusmon.compile.templates import TemplateFailure
from nexusmon.engine.cache import SourceHasher
from nexusmon.engine.calls import call_shell, call_worker
from nexusmon.engine.context import RunContext, TaskOutcome, task_context
from nexusmon.errors import NexusmonError
from nexusmon.spec.model import TaskStatus
from nexusmon.store.vault import ArtifactPathError, Vault, normalize
from nexusmon.util.capture import Capture, capturing
from nexusmon.util.lazy import asyncio
from nexusmon.util.masking import Masker
from nexusmon.util.process import keep_partial_log, partial_log
from nexusmon.util.wsglob import WorkspaceFiles
from nexusmon.workers.base import Result, Task, WorkerPlugin
from nexusmon.workers.shell import ShellWorker


class Finished(Struct):
    """The end state of one task in one run, as the ledger records it."""

    status: TaskStatus
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    failure_kind: str | None = None
    cpu_s: float = 0.0
    peak_rss_kb: int = 0
    cost_usd: float = 0.0
    logs: list[tuple[int, str]] = field(default_factory=list)
    stopped: bool = False  # cut short by the run (Ctrl-C, its time limit): what it did so far
    stops_run: bool = False  # the task raised KeyboardInterrupt: the run stops as on Ctrl-C

    @property
    def duration_s(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return round(self.finished_at - self.started_at, 6)


class ParamsRefused(Exception):
    """Parameters rendered at run time that do not fit the worker's ``params_schema``."""


class Executor(Struct, frozen=True):
    """What every task of a run shares when it executes."""

    run: RunContext
    base_env: Mapping[str, str]
    masker: Masker
    scratch: Path
    vault: Vault
    lineage: Mapping[str, Any]
    hasher: SourceHasher  # the run's: its digest memo spares re-reading unchanged sources

    def params_and_env(
        self, task: PlannedTask, worker: WorkerPlugin, outcomes: Mapping[str, TaskOutcome],
    ) -> tuple[Mapping[str, Any], dict[str, str]]:
        """Final parameters and environment (re-rendered when they read run-time values).

        Re-rendered parameters are checked against the worker's ``params_schema`` here, as
        compiling checked the others: :class:`ParamsRefused` when they do not fit.
        """
        if task.reads.runtime:
            fields = render_fields(task.spec, task_context(self.run, task, outcomes))
            params, env = fields.params, fields.env
            complaint = params_complaint(worker, params)
            if complaint is not None:
                raise ParamsRefused(_refusal(task, complaint))
        else:
            params, env = task.params, task.env
        full = dict(self.base_env)
        full.update(env)
        full["NEXUSMON_TASK_ID"] = task.id
        return params, full

    async def execute(
        self, task: PlannedTask, worker: WorkerPlugin, outcomes: Mapping[str, TaskOutcome],
        on_output: Any = None,
    ) -> Finished:
        started = time.time()
        try:
            params, env = self.params_and_env(task, worker, outcomes)
        except (FieldError, TemplateFailure) as exc:  # TemplateFailure: a rune call's `outputs`
            message = ("; ".join(f"{d.location}: {d.message}" for d in exc.diagnostics)
                       if isinstance(exc, FieldError) else str(exc))
            return Finished(TaskStatus.FAILED, 0, started, time.time(),
                            error=self.masker.mask(message), failure_kind="template")
        except ParamsRefused as exc:  # the worker is never called with parameters it refuses
            return Finished(TaskStatus.FAILED, 0, started, time.time(),
                            error=self.masker.mask(str(exc)), failure_kind="params")
        finished = await self._attempts(task, worker, params, env, started, on_output)
        if finished.status is TaskStatus.SUCCEEDED and task.spec.artifacts:
            self._store_artifacts(task, finished, self._lineage(task, outcomes))
        return finished

    def _lineage(self, task: PlannedTask, outcomes: Mapping[str, TaskOutcome]) -> dict[str, Any]:
        """Run identity, the task's source digests and the artifact versions upstream of it
        (of the tasks it needs, directly or transitively: what its templates could read)."""
        upstream = [
            {"path": a.get("path"), "version": a.get("version"), "task": need}
            for need in _ancestors(self.run.plan, task)
            for a in (outcomes[need].artifacts if need in outcomes else [])
        ]
        try:
            sources = self.hasher.fresh().sources(task.spec.sources)  # as the task left them
        except OSError:
            sources = {}
        sources = {path: f"sha256:{digest}" for path, digest in sources.items()}  # as artifacts name theirs
        return dict(self.lineage, task=task.id, sources=sources, upstream=upstream)

    async def _attempts(
        self, task: PlannedTask, worker: WorkerPlugin, params: Mapping[str, Any],
        env: Mapping[str, str], started: float, on_output: Any,
    ) -> Finished:
        finished = Finished(TaskStatus.FAILED, 0, started)
        delay = task.spec.retry_delay
        for attempt in range(1, task.spec.retries + 2):
            try:
                if attempt > 1:
                    await asyncio.sleep(delay)
                    delay *= 2
                finished.attempts = attempt
                result = await self._attempt(task, worker, params, env, attempt, on_output)
            except (asyncio.CancelledError, KeyboardInterrupt) as exc:
                # Stopped by the scheduler (it says why), or asking it to stop the run as Ctrl-C
                # does: either way the task keeps its attempts and what it printed.
                log = partial_log(exc)
                if log:
                    finished.logs.append((attempt, self.masker.mask(log)))
                if isinstance(exc, KeyboardInterrupt):
                    finished.status, finished.stops_run = TaskStatus.CANCELLED, True
                    finished.error = "interrupted: the task raised KeyboardInterrupt"
                    finished.failure_kind = "interrupted"
                else:
                    finished.stopped = True
                break
            finished.cpu_s += result.cpu_s
            finished.peak_rss_kb = max(finished.peak_rss_kb, result.peak_rss_kb)
            finished.cost_usd += result.cost_usd
            # Every text the worker returned is masked: outputs (keys and values), log, error
            # and failure kind (a plugin's own text, stored and shown by `omens`).
            finished.outputs = self.masker.mask_value(dict(result.outputs))
            if result.log:
                finished.logs.append((attempt, self.masker.mask(result.log)))
            if result.ok:
                finished.status, finished.error, finished.failure_kind = TaskStatus.SUCCEEDED, None, None
                break
            finished.error = self.masker.mask(result.error or "failed")
            finished.failure_kind = self.masker.mask(result.failure_kind or "error")
        finished.finished_at = time.time()
        return finished

    async def _attempt(
        self, task: PlannedTask, worker: WorkerPlugin, params: Mapping[str, Any],
        env: Mapping[str, str], attempt: int, on_output: Any,
    ) -> Result:
        try:
            cwd = self._cwd(params)
        except ArtifactPathError as exc:
            return Result(False, error=str(exc), failure_kind="cwd")
        output_file = self._output_file(task)
        job = Task(
            id=task.id, mission=self.run.plan.mission.id, run_id=self.run.run_id, worker=task.worker,
            params=params, env=env, cwd=cwd, workspace=self.run.root, timeout=task.spec.timeout,
            secrets=tuple(self.run.secrets.values()), output_file=output_file, attempt=attempt,
            on_output=on_output,
        )
        capture = None
        try:
            if isinstance(worker, ShellWorker):
                return await call_shell(worker, job)
            capture = Capture(self.masker)
            with capturing(capture):
                result = await call_worker(worker, job, task.spec.timeout)
        except (asyncio.CancelledError, KeyboardInterrupt) as exc:  # stopped: see _attempts
            if capture is not None:
                keep_partial_log(exc, capture.text())
            raise
        finally:
            if output_file is not None:
                _remove(output_file)
        return _with_log(result, capture.text())

    def _output_file(self, task: PlannedTask) -> Path | None:
        """A fresh path for $NEXUSMON_OUTPUT (the shell worker creates the file)."""
        if task.worker != "shell":
            return None
        return self.scratch / f"{self.run.run_id}-{next(_OUTPUT_NUMBERS)}.out"

    def _cwd(self, params: Mapping[str, Any]) -> Path:
        wanted = params.get("cwd") if isinstance(params, Mapping) else None
        if not wanted:
            return self.run.root
        cwd = self.vault.confine(str(wanted), what="with.cwd")
        if not cwd.is_dir():
            raise ArtifactPathError(f"with.cwd '{wanted}' is not a directory of the workspace")
        return cwd

    def _store_artifacts(self, task: PlannedTask, finished: Finished, lineage: dict[str, Any]) -> None:
        try:
            files = WorkspaceFiles(self.run.root, self.vault.ledger.state_dir)
            for pattern in task.spec.artifacts:
                matched = files.expand(pattern)
                if not matched and files.is_hidden(normalize(pattern)):
                    raise NexusmonError(f"artifact '{pattern}' is inside .git or nexusmon's state "
                                        "directory, which are never stored")
                if not matched:
                    raise NexusmonError(f"artifact '{pattern}' matched no file")
                for rel in matched:
                    if self.masker.mask(rel) != rel:
                        raise NexusmonError(f"artifact '{self.masker.mask(rel)}' has a secret in its "
                                            "path; a stored path is never masked, so it is not stored")
                    record = self.vault.store(rel, run_id=self.run.run_id, task_id=task.id, lineage=lineage)
                    finished.artifacts.append({"path": record.path, "version": record.version,
                                               "digest": record.digest})
        except NexusmonError as exc:
            finished.status, finished.error, finished.failure_kind = TaskStatus.FAILED, str(exc), "artifact"


_OUTPUT_NUMBERS = itertools.count(1)
SHOWN_VALUE = 60  # characters of a refused parameter value quoted in the task's error


def _refusal(task: PlannedTask, complaint: ParamsComplaint) -> str:
    """``task 'x': worker 'y': with.count must be integer, got 'abc' (rendered at run time)``."""
    got = ""
    if complaint.at:
        shown = repr(complaint.value)
        got = f", got {shown if len(shown) <= SHOWN_VALUE else shown[:SHOWN_VALUE] + '...'}"
    return f"task '{task.id}': worker '{task.worker}': {complaint.message}{got} (rendered at run time)"


def _ancestors(plan: Plan, task: PlannedTask) -> list[str]:
    """Every task ``task`` waits for, directly or transitively, in plan order."""
    needs = {t.id: t.needs for t in plan.tasks}
    seen: set[str] = set()
    todo = list(task.needs)
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(needs.get(current, ()))
    return [t.id for t in plan.tasks if t.id in seen]


def _with_log(result: Result, captured: str) -> Result:
    """``result`` with what the attempt printed in-process before the worker's own log."""
    if not captured:
        return result
    if result.log and not captured.endswith("\n"):
        captured += "\n"
    return structs.replace(result, log=captured + result.log)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
