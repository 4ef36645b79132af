"""Cache state per task for `plan`: hit, miss (and why), or off."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from nexusmon.compile.plan import Plan
from nexusmon.engine.cache import SourceHasher, explain_miss, fingerprint, result_digest
from nexusmon.store.ledger import LEDGER_FILE, Ledger

CacheState = tuple[str, Optional[str]]


def cache_states(plan: Plan, state_dir: Path) -> dict[str, CacheState]:
    """Predict each task's cache state without running anything."""
    if not (state_dir / LEDGER_FILE).is_file():
        return {t.id: ("miss", "never ran") if t.cache else ("off", None) for t in plan.tasks}
    hasher = SourceHasher(plan.root, state_dir)
    predicted: dict[str, str | None] = {}  # task id -> result digest when it will be cached
    states: dict[str, CacheState] = {}
    with Ledger(state_dir) as ledger:
        for task in plan.tasks:
            predicted[task.id] = None
            if not task.cache:
                states[task.id] = ("off", None)
                continue
            running = [n for n in task.needs if predicted.get(n) is None]
            if running:
                states[task.id] = ("miss", f"upstream '{running[0]}' will run")
                continue
            upstream = {n: predicted[n] or "" for n in task.needs}
            try:
                fp = fingerprint(task, plan.env, hasher, upstream, plan.mission.id)
            except OSError as exc:
                states[task.id] = ("miss", f"cannot read a source: {exc.strerror}")
                continue
            row = ledger.cache_get(fp.digest)
            if row is not None:
                states[task.id] = ("hit", None)
                predicted[task.id] = result_digest(row.outputs, row.artifacts)
                continue
            latest = ledger.cache_latest(plan.mission.id, task.id)
            states[task.id] = ("miss", explain_miss(fp.parts, latest.parts if latest else None))
    hasher.save()
    return states
