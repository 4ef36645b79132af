"""The compiled plan: rendered tasks in topological order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexusmon.compile.render import Reads
from nexusmon.compile.units import Scope
from nexusmon.spec.model import Mission, Rank, TaskSpec


@dataclass(frozen=True)
class PlannedTask:
    """One task of a plan. ``params``/``env`` are the display form (see compile.context)."""

    id: str
    spec: TaskSpec
    scope: Scope
    matrix: Mapping[str, Any]
    needs: tuple[str, ...]
    uses: str | None
    worker: str
    base_rank: Rank  # max of mission floor, task rank and enclosing rune calls' ranks
    params: Mapping[str, Any]
    env: Mapping[str, str]
    reads: Reads
    cache: bool
    condition: bool | None  # the `if` when known at compile time
    matrix_size: int

    @property
    def description(self) -> str | None:
        return self.spec.description


@dataclass(frozen=True)
class Plan:
    mission: Mission
    root: Path
    inputs: Mapping[str, Any]
    env: Mapping[str, str]  # the mission's env, display form
    tasks: tuple[PlannedTask, ...]  # topological order

    def task(self, task_id: str) -> PlannedTask | None:
        return self.index.get(task_id)

    @property
    def index(self) -> dict[str, PlannedTask]:
        return {t.id: t for t in self.tasks}
