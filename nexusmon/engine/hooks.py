"""The runner's scheduler hooks: cache lookups, ledger recording, progress, omens."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Callable, Optional

from msgspec import Struct, field

from nexusmon.compile.plan import PlannedTask
from nexusmon.engine.cache import Fingerprint, SourceHasher, fingerprint, result_digest
from nexusmon.engine.context import TaskOutcome
from nexusmon.engine.execute import Finished
from nexusmon.engine.recorder import Recorder
from nexusmon.engine.scheduler import Gate, Hooks
from nexusmon.errors import NexusmonError
from nexusmon.spec.model import TaskStatus
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import CacheRow
from nexusmon.store.vault import Vault
from nexusmon.workers.mission import HELD_KIND

# A task that ran a worker is written to the ledger as soon as it settles, before anything
# else starts: after a SIGKILL, `resume` must never run again what already did its work.
# Tasks settled without running anything (cached, skipped, held, noop) ride the next batch.
# The plan's pending rows are written before the first such task starts, so a run killed
# at any moment shows every task; a run that starts none writes each row once.
NO_SIDE_EFFECTS = frozenset({"noop"})

#: (kind, task, status, duration, note): kind is "started", "settled", or "idle" (no task:
#: the scheduler is about to wait, or ended; progress held back may be shown now).
Progress = Callable[[str, Optional[PlannedTask], Optional[TaskStatus], Optional[float], Optional[str]], None]


class RunHooks(Hooks, Struct):
    """What the scheduler calls as tasks start and settle."""

    ledger: Ledger
    vault: Vault
    recorder: Recorder
    hasher: SourceHasher
    mission: str
    mission_env: Mapping[str, str]
    progress: Progress | None = None
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    # Looked up ahead by prefetch(): task id -> its fingerprint and cache row (None: a miss).
    prefetched: dict[str, tuple[Fingerprint, CacheRow | None]] = field(default_factory=dict)

    def _fingerprint(self, task: PlannedTask, outcomes: Mapping[str, TaskOutcome]) -> Fingerprint:
        upstream = {n: result_digest(outcomes[n].outputs, outcomes[n].artifacts) for n in task.needs if n in outcomes}
        return fingerprint(task, self.mission_env, self.hasher, upstream, self.mission)

    def prefetch(self, tasks: list[PlannedTask], outcomes: Mapping[str, TaskOutcome]) -> None:
        """One query for the cache rows of many ready tasks (an up-to-date re-run of 1,000
        tasks would otherwise make 1,000)."""
        fps: dict[str, Fingerprint] = {}
        for task in tasks:
            try:
                fps[task.id] = self._fingerprint(task, outcomes)
            except (NexusmonError, OSError):
                continue  # cached() meets the error again, and fails the task with it
        rows = self.ledger.cache_get_many(fp.digest for fp in fps.values())
        self.prefetched.update((task_id, (fp, rows.get(fp.digest))) for task_id, fp in fps.items())

    def cached(self, task: PlannedTask, outcomes: Mapping[str, TaskOutcome], lookup: bool) -> TaskOutcome | None:
        early = self.prefetched.pop(task.id, None)  # no task ran since: still current
        if early is not None:
            fp, row = early[0], early[1] if lookup else None
        else:
            fp = self._fingerprint(task, outcomes)
            row = self.ledger.cache_get(fp.digest) if lookup else None
        self.fingerprints[task.id] = fp
        if row is None:
            return None
        try:
            for art in row.artifacts:
                self.vault.restore(self.vault.get(str(art["path"]), int(art["version"])))
        except NexusmonError:
            return None  # the cached artifact is gone or damaged: run the task instead
        return TaskOutcome(TaskStatus.CACHED, dict(row.outputs), [dict(a) for a in row.artifacts])

    def started(self, task: PlannedTask, gate: Gate) -> None:
        if task.worker not in NO_SIDE_EFFECTS:
            self.recorder.flush_plan()  # the run's rows are in the ledger before anything runs
        self.recorder.update(
            task.id, "task.started", {"rank": gate.rank.name, "decision": gate.decision.value, "digest": gate.digest},
            status=TaskStatus.RUNNING.value, started_at=time.time(),
        )
        if self.progress:
            self.progress("started", task, None, None, None)

    def tick(self) -> None:
        self.recorder.maybe_flush()

    def idle(self) -> None:
        if self.progress:
            self.progress("idle", None, None, None, None)

    def settled(self, task: PlannedTask, gate: Gate, outcome: TaskOutcome,
                finished: Finished | None, note: str | None) -> None:
        status = outcome.status
        fp = self.fingerprints.get(task.id)
        fields: dict[str, Any] = {"status": status.value, "error": note if not status.ok or status is TaskStatus.SKIPPED else None}
        if finished is not None:
            fields.update(
                attempts=finished.attempts, started_at=finished.started_at, finished_at=finished.finished_at,
                duration_s=finished.duration_s, cpu_s=round(finished.cpu_s, 6), peak_rss_kb=finished.peak_rss_kb,
                outputs=finished.outputs, artifacts=tuple(finished.artifacts), failure_kind=finished.failure_kind,
                cost_usd=finished.cost_usd or None,
            )
            for attempt, text in finished.logs:
                self.recorder.log(task.id, attempt, text)
            if finished.attempts:
                self.hasher.forget()
                self.prefetched.clear()  # taken before the task ran, which may have changed files
        elif status is TaskStatus.CACHED:
            fields.update(outputs=outcome.outputs, artifacts=tuple(outcome.artifacts), attempts=0, duration_s=0.0)
        if fp is not None:
            fields["fingerprint"] = fp.digest
        payload = {"rank": gate.rank.name, "decision": gate.decision.value}
        if note:
            payload["note"] = note
        self.recorder.update(task.id, f"task.{status.value}", payload, **fields)
        if status is TaskStatus.SUCCEEDED and task.cache and fp is not None and finished is not None:
            self._cache_put(task, fp, finished)
        if status is TaskStatus.FAILED and finished is not None and finished.failure_kind not in (None, HELD_KIND):
            count = self.ledger.bump_omen(self.mission, task.id, finished.failure_kind)
            self.recorder.event("omen.counted", {"mission": self.mission, "kind": finished.failure_kind, "count": count}, task.id)
        if finished is not None and finished.attempts and task.worker not in NO_SIDE_EFFECTS:
            self.recorder.flush()  # durable before its dependents start: resume never repeats it
        if self.progress:
            duration = finished.duration_s if finished is not None else None
            self.progress("settled", task, status, duration, note)

    def _cache_put(self, task: PlannedTask, fp: Fingerprint, finished: Finished) -> None:
        """Store the result under the fingerprint it ran with, unless a source changed while
        it ran: the result may come from the new content, and the old content's key must
        not serve it (restoring a file, or a branch switch, would then get a stale result)."""
        if task.spec.sources:
            now = self.hasher.sources(task.spec.sources)
            before = fp.parts["sources"]
            if now != before:
                changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
                self.recorder.event("cache.skipped", {
                    "mission": self.mission,
                    "reason": "sources changed while the task ran: " + ", ".join(changed[:5]),
                }, task.id)
                return
        self.ledger.cache_put(CacheRow(fp.digest, self.mission, task.id, self.recorder.run_id,
                                       finished.outputs, tuple(finished.artifacts), time.time(),
                                       self.recorder.masker.mask_value(fp.parts)))
