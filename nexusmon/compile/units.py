"""Expansion of rune calls and matrices into flat, globally named units of work."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from nexusmon.compile.templates import as_text
from nexusmon.spec.model import Rank, Rune, TaskSpec


class CallExport(Struct, frozen=True):
    """A rune call as callers see it: the rune, its inner scope and its leaf tasks."""

    rune: Rune
    scope: Scope
    leaves: tuple[str, ...]


class Scope(Struct, frozen=True):
    """Names visible to templates of tasks declared side by side (a mission or one rune call)."""

    prefix: str
    inputs: Mapping[str, Any]
    rune: Rune | None
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # local name -> global ids
    calls: Mapping[str, CallExport] = field(default_factory=dict)  # local name -> rune call

    def local(self, global_id: str) -> str:
        return global_id[len(self.prefix):]


class Unit(Struct, frozen=True):
    """One task after expansion, before rendering."""

    id: str
    spec: TaskSpec
    scope: Scope
    matrix: Mapping[str, Any]
    needs: tuple[str, ...]
    uses: str | None
    rank_floor: Rank | None
    order: int  # declaration order, for stable topological sorting


def matrix_combinations(spec: TaskSpec) -> list[tuple[str, dict[str, Any]]]:
    """``[(global-suffix, {name: value})]`` for a task's matrix, in key order."""
    if not spec.matrix:
        return [("", {})]
    names = [name for name, _ in spec.matrix]
    combos = itertools.product(*(values for _, values in spec.matrix))
    return [
        ("[" + ",".join(as_text(v) for v in combo) + "]", dict(zip(names, combo)))
        for combo in combos
    ]
