"""The scheduler: start every task whose needs are done, at most N at once.

One asyncio loop drives a graphlib-style countdown of unfinished needs. Tasks
that need no process (cache hits, skips, policy holds, the noop worker) are
settled inline without creating an asyncio task, which keeps large plans cheap.
:meth:`Scheduler.prepare` settles the first of them before any loop exists: a
run that has nothing to execute (an up-to-date re-run) never imports asyncio.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable

from msgspec import Struct, field

from nexusmon.compile.plan import Plan, PlannedTask
from nexusmon.compile.render import FieldError, condition
from nexusmon.compile.templates import TemplateFailure
from nexusmon.engine.context import TaskOutcome, task_context
from nexusmon.engine.execute import Executor, Finished
from nexusmon.errors import NexusmonError
from nexusmon.spec.model import Decision, Rank, TaskStatus
from nexusmon.util.lazy import asyncio
from nexusmon.workers.base import WorkerPlugin

TICK_SECONDS = 0.25


class Gate(Struct, frozen=True):
    """Governance's word on one task for this run."""

    rank: Rank
    decision: Decision
    reasons: tuple[str, ...]
    digest: str
    hold: TaskStatus | None = None  # BLOCKED / AWAITING_APPROVAL / FAILED (rejected)
    note: str | None = None


class Options(Struct):
    """How a run is scheduled: concurrency, fail-fast, cache, deadline, cost cap."""

    concurrency: int
    keep_going: bool = False
    use_cache: bool = True
    deadline: float | None = None  # time.monotonic() limit for the whole run
    max_cost_usd: float | None = None


class Hooks:
    """Callbacks the runner plugs in: cache, recording, progress."""

    def cached(self, task: PlannedTask, outcomes: Mapping[str, TaskOutcome], lookup: bool) -> TaskOutcome | None:
        """The cached result standing in for ``task``, or None.

        With ``lookup`` off (``--no-cache``) always None, but the task's fresh result
        still refreshes the cache.
        """
        return None

    def prefetch(self, tasks: list[PlannedTask], outcomes: Mapping[str, TaskOutcome]) -> None:
        """A hint: ``tasks`` are about to be checked with :meth:`cached` (look them up at once)."""

    def started(self, task: PlannedTask, gate: Gate) -> None: ...

    def tick(self) -> None:
        """Called while tasks run and nothing settles (at least every TICK_SECONDS)."""

    def idle(self) -> None:
        """Called before the scheduler waits for running tasks, and when it ends."""

    def settled(self, task: PlannedTask, gate: Gate, outcome: TaskOutcome,
                finished: Finished | None, note: str | None) -> None: ...


class Scheduler(Struct, dict=True):  # dict: run-time bookkeeping set in __post_init__
    """Runs a plan's tasks as their needs settle, within the concurrency limit."""

    plan: Plan
    gates: Mapping[str, Gate]
    workers: Callable[[str], WorkerPlugin]
    executor: Executor
    hooks: Hooks
    options: Options
    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)  # settled tasks (seeded on resume)
    stop_reason: str | None = None
    interrupted: bool = False
    cost_usd: float = 0.0

    def __post_init__(self) -> None:
        self._tasks = self.plan.index
        self._children: dict[str, list[str]] = {t.id: [] for t in self.plan.tasks}
        self._waiting: dict[str, int] = {}
        for t in self.plan.tasks:
            for need in t.needs:
                self._children[need].append(t.id)
        self._running: dict[asyncio.Task[Finished], str] = {}
        self._cancelled: set[asyncio.Task[Finished]] = set()  # once per Ctrl-C: a second one means "now"
        self._started: dict[str, float] = {}
        self._ready: deque[str] = deque()
        self._deferred: list[PlannedTask] = []  # started by prepare(), launched once the loop runs
        self._looping = False

    # -- public -----------------------------------------------------------------
    def interrupt(self) -> None:
        """Ctrl-C / SIGTERM: start nothing new, kill what runs."""
        self.interrupted = True
        for job in self._running:
            job.cancel()
            self._cancelled.add(job)

    def prepare(self) -> bool:
        """Settle, without an event loop, the ready tasks that need no process, and start
        (up to the concurrency limit) those that do; True when :meth:`run` has work left."""
        for t in self.plan.tasks:
            if t.id in self.outcomes:
                continue
            self._waiting[t.id] = sum(1 for n in t.needs if not self._ok(n))
            if any(self._dead(n) for n in t.needs):
                continue
            if self._waiting[t.id] == 0:
                self._ready.append(t.id)
        if self.options.use_cache:
            ready = (self._tasks[t] for t in self._ready)
            self.hooks.prefetch([t for t in ready if t.cache and self.gates[t.id].hold is None], self.outcomes)
        self._launch_ready()
        return bool(self._deferred)

    async def run(self) -> None:
        """Launch what :meth:`prepare` started, then drive everything to its end."""
        self._looping = True
        deferred, self._deferred = self._deferred, []
        for task in deferred:
            if not self.interrupted:  # else finish() cancels it
                self._launch(task)
        while True:
            self._launch_ready()
            if not self._running:
                break
            self.hooks.idle()
            await self._wait_some()

    def finish(self) -> dict[str, TaskOutcome]:
        """Cancel what never started; every task's outcome."""
        self._cancel_rest()
        return self.outcomes

    # -- state helpers ----------------------------------------------------------
    def _ok(self, task_id: str) -> bool:
        outcome = self.outcomes.get(task_id)
        return outcome is not None and outcome.status.ok

    def _dead(self, task_id: str) -> bool:
        outcome = self.outcomes.get(task_id)
        return outcome is not None and not outcome.status.ok

    @property
    def _stopping(self) -> bool:
        return self.interrupted or self.stop_reason is not None

    # -- launching ----------------------------------------------------------------
    def _launch_ready(self) -> None:
        while self._ready and not self._stopping:
            if len(self._running) + len(self._deferred) >= self.options.concurrency:
                return
            task = self._tasks[self._ready.popleft()]
            self._start(task)

    def _start(self, task: PlannedTask) -> None:
        gate = self.gates[task.id]
        skip = self._condition(task)
        if isinstance(skip, str):
            self._settle(task, TaskStatus.FAILED, Finished(TaskStatus.FAILED, error=skip, failure_kind="template"), skip)
            return
        if skip:
            self._settle(task, TaskStatus.SKIPPED, None, "`if` is false")
            return
        if gate.hold is not None:
            self._settle(task, gate.hold, None, gate.note)
            return
        if task.cache:
            try:
                hit = self.hooks.cached(task, self.outcomes, self.options.use_cache)
            except (NexusmonError, OSError) as exc:  # a source that cannot be read or named
                error = f"cannot check the task's cache: {exc}"
                self._settle(task, TaskStatus.FAILED, Finished(TaskStatus.FAILED, error=error, failure_kind="sources"), error)
                return
            if hit is not None:
                self._settle(task, TaskStatus.CACHED, None, None, hit)
                return
        self.hooks.started(task, gate)
        if task.worker == "noop":
            now = time.time()
            self._settle(task, TaskStatus.SUCCEEDED, Finished(TaskStatus.SUCCEEDED, 1, now, now), None)
            return
        if self._looping:
            self._launch(task)
        else:
            self._deferred.append(task)

    def _launch(self, task: PlannedTask) -> None:
        worker = self.workers(task.worker)
        job = asyncio.ensure_future(self.executor.execute(task, worker, self.outcomes))
        self._running[job] = task.id
        self._started[task.id] = time.time()

    def _condition(self, task: PlannedTask) -> Any:
        """True to skip, False to run, a message when the `if` cannot be evaluated."""
        if task.spec.if_ is None:
            return False
        if not task.reads.runtime and task.condition is not None:
            return not task.condition
        try:
            return not condition(task.spec, task_context(self.executor.run, task, self.outcomes))
        except (FieldError, TemplateFailure) as exc:
            return str(exc)

    # -- waiting ------------------------------------------------------------------
    async def _wait_some(self) -> None:
        timeout = TICK_SECONDS
        if self.options.deadline is not None:
            timeout = min(timeout, max(0.0, self.options.deadline - time.monotonic()))
        # interrupt() cancels the running jobs, which wakes this wait up.
        done, _ = await asyncio.wait(set(self._running), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self.interrupted:
            await self._kill_running("interrupted", TaskStatus.CANCELLED)
            return
        if not done and (self.options.deadline is None or time.monotonic() < self.options.deadline):
            self.hooks.tick()
            return
        if not done:
            self.stop_reason = "the run exceeded constraints.max_time_seconds"
            await self._kill_running("the run exceeded constraints.max_time_seconds", TaskStatus.FAILED)
            return
        for job in self._finished_jobs(done):
            task = self._tasks[self._running.pop(job)]
            finished = job.result()
            self.cost_usd += finished.cost_usd
            self._settle(task, finished.status, finished, finished.error)
            if finished.stops_run:
                self.stop_reason = self.stop_reason or f"interrupted: task '{task.id}' raised KeyboardInterrupt"
                self.interrupt()
        cap = self.options.max_cost_usd
        if cap is not None and self.cost_usd > cap and self.stop_reason is None:
            self.stop_reason = f"spent ${self.cost_usd:.4f}, over constraints.max_cost_usd ${cap:g}"

    def _finished_jobs(self, done: Any) -> list[asyncio.Task[Finished]]:
        return [job for job in self._running if job in done]

    async def _kill_running(self, why: str, status: TaskStatus) -> None:
        jobs = list(self._running)
        for job in jobs:
            # Cancelled by interrupt() already: a second cancel would cut short its clean stop
            # (a child run's grace to record `interrupted`) as a second Ctrl-C does.
            if job not in self._cancelled:
                job.cancel()
        ended = await asyncio.gather(*jobs, return_exceptions=True)
        for job, result in zip(jobs, ended):
            task = self._tasks[self._running.pop(job)]
            if isinstance(result, Finished) and not result.stopped:  # it ended on its own meanwhile
                self.cost_usd += result.cost_usd
                self._settle(task, result.status, result, result.error)
                continue
            # Stopped: it keeps its attempts and what it printed (a plugin that swallowed the
            # cancellation has nothing to show).
            killed = result if isinstance(result, Finished) else Finished(
                status, 1, self._started.get(task.id, time.time()))
            killed.status, killed.error, killed.failure_kind = status, why, "timeout"
            killed.finished_at = time.time()
            self._settle(task, status, killed, why)

    # -- settling -----------------------------------------------------------------
    def _settle(
        self, task: PlannedTask, status: TaskStatus, finished: Finished | None, note: str | None,
        outcome: TaskOutcome | None = None,
    ) -> None:
        if outcome is None:
            outcome = TaskOutcome(status, finished.outputs if finished else {}, finished.artifacts if finished else [])
        self.outcomes[task.id] = outcome
        self.hooks.settled(task, self.gates[task.id], outcome, finished, note)
        if status is TaskStatus.FAILED and not self.options.keep_going and self.stop_reason is None:
            self.stop_reason = f"task '{task.id}' failed"
        if not status.ok:
            return
        for child in self._children[task.id]:
            if child in self.outcomes:
                continue
            self._waiting[child] -= 1
            if self._waiting[child] == 0 and not any(self._dead(n) for n in self._tasks[child].needs):
                self._ready.append(child)

    def _cancel_rest(self) -> None:
        for task in self.plan.tasks:
            if task.id in self.outcomes:
                continue
            blocked_by = [n for n in task.needs if self._dead(n) or n not in self.outcomes]
            if self.interrupted:
                note = "interrupted"
            elif blocked_by:
                upstream = blocked_by[0]
                state = self.outcomes[upstream].status.value if upstream in self.outcomes else "not run"
                note = f"upstream '{upstream}' {state}"
            else:
                note = self.stop_reason or "not started"
            self._settle(task, TaskStatus.CANCELLED, None, note)


