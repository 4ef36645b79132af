"""The compiled plan: rendered tasks in topological order."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct

from nexusmon.compile.render import Reads
from nexusmon.compile.units import Scope, Unit
from nexusmon.spec.model import Mission, Rank, TaskSpec


class PlannedTask(Struct, frozen=True):
    """One expanded task (its :class:`Unit`) rendered and checked.

    ``params``/``env`` are the display form (see compile.context).
    """

    unit: Unit
    worker: str
    base_rank: Rank  # max of mission floor, task rank and enclosing rune calls' ranks
    params: Mapping[str, Any]
    env: Mapping[str, str]
    reads: Reads
    cache: bool
    condition: bool | None  # the `if` when known at compile time
    matrix_size: int

    @property
    def id(self) -> str:
        return self.unit.id

    @property
    def spec(self) -> TaskSpec:
        return self.unit.spec

    @property
    def scope(self) -> Scope:
        return self.unit.scope

    @property
    def matrix(self) -> Mapping[str, Any]:
        return self.unit.matrix

    @property
    def needs(self) -> tuple[str, ...]:
        return self.unit.needs

    @property
    def uses(self) -> str | None:
        return self.unit.uses

    @property
    def description(self) -> str | None:
        return self.spec.description


class Plan(Struct, frozen=True):
    """A compiled mission: its tasks in a stable topological order, ready to govern and run."""

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
