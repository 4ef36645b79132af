"""The compiled plan: rendered tasks in topological order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

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
    needs: Tuple[str, ...]
    uses: Optional[str]
    worker: str
    base_rank: Rank  # max of mission floor, task rank and enclosing rune calls' ranks
    params: Mapping[str, Any]
    env: Mapping[str, str]
    reads: Reads
    cache: bool
    condition: Optional[bool]  # the `if` when known at compile time
    matrix_size: int

    @property
    def description(self) -> Optional[str]:
        return self.spec.description


@dataclass(frozen=True)
class Plan:
    mission: Mission
    root: Path
    inputs: Mapping[str, Any]
    env: Mapping[str, str]  # the mission's env, display form
    tasks: Tuple[PlannedTask, ...]  # topological order

    def task(self, task_id: str) -> Optional[PlannedTask]:
        return self.index.get(task_id)

    @property
    def index(self) -> Dict[str, PlannedTask]:
        return {t.id: t for t in self.tasks}
