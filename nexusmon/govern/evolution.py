"""Evolution: levels earned by successful mission runs, and the capabilities they unlock.

Every successful mission run earns ``XP_PER_MISSION`` (100) XP, so level
thresholds read as completed missions: DORMANT 0, AWAKENING 1 (RECALL,
COMPANION), FORGING 10 (WORKER_SPAWN, BELIEF_TRACK), SOVEREIGN 50
(AUTONOMOUS_CHAIN, OPERATOR_FUSION), APEX 200 (every capability, including
ones only plugins name). Capabilities accumulate: a level holds its own and
every lower level's.

The one policy file that defines ``evolution`` may move thresholds and set
the matrix size that needs WORKER_SPAWN::

    evolution:
      levels: {AWAKENING: 1, FORGING: 5}   # completed missions; DORMANT stays 0
      spawn_matrix_above: 3                 # a matrix of more than 3 needs WORKER_SPAWN
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from nexusmon.errors import Diagnostic, Location
from nexusmon.spec.schema_check import closest

XP_PER_MISSION = 100


class Level(Struct, frozen=True):
    """An evolution level: how many completed missions reach it and what it unlocks."""

    name: str
    min_missions: int
    capabilities: frozenset[str]  # unlocked at this level (lower levels' not repeated)
    unlocks_all: bool = False


class Progress(Struct, frozen=True):
    """Where a workspace stands: its level, XP and what the next level needs."""

    level: Level
    xp: int
    next_level: Level | None
    missions_to_next: int | None
    fraction: float  # 0..1 of the way from this level to the next (1.0 at the top)


class EvolutionSettings(Struct, frozen=True):
    """The levels in force and the matrix size that needs WORKER_SPAWN."""

    levels: tuple[Level, ...]
    spawn_matrix_above: int | None = None  # None: no matrix-size requirement


LEVELS: tuple[Level, ...] = (
    Level("DORMANT", 0, frozenset()),
    Level("AWAKENING", 1, frozenset({"RECALL", "COMPANION"})),
    Level("FORGING", 10, frozenset({"WORKER_SPAWN", "BELIEF_TRACK"})),
    Level("SOVEREIGN", 50, frozenset({"AUTONOMOUS_CHAIN", "OPERATOR_FUSION"})),
    Level("APEX", 200, frozenset(), unlocks_all=True),
)
LEVEL_NAMES = tuple(level.name for level in LEVELS)
ALL_CAPABILITIES: frozenset[str] = frozenset().union(*(level.capabilities for level in LEVELS))
DEFAULT_EVOLUTION = EvolutionSettings(LEVELS)


def capability_typo(name: str) -> str | None:
    """The known capability ``name`` misspells (``COMPANON``, ``companion``), or None.

    A name far from every known one is not a typo: it is a plugin's own capability,
    which only the top level unlocks.
    """
    if name in ALL_CAPABILITIES:
        return None
    upper = name.upper()
    return upper if upper in ALL_CAPABILITIES else closest(upper, sorted(ALL_CAPABILITIES))


def level_for(completed: int, levels: tuple[Level, ...] = LEVELS) -> Level:
    """The highest level whose threshold ``completed`` missions reach."""
    reached = [level for level in levels if completed >= level.min_missions]
    return reached[-1] if reached else levels[0]


def capabilities_at(completed: int, levels: tuple[Level, ...] = LEVELS) -> frozenset[str]:
    """Every known capability held after ``completed`` successful missions."""
    current = level_for(completed, levels)
    if current.unlocks_all:
        return ALL_CAPABILITIES
    held = [level.capabilities for level in levels if level.min_missions <= current.min_missions]
    return frozenset().union(*held)


def has_capability(capability: str, completed: int, levels: tuple[Level, ...] = LEVELS) -> bool:
    """True when ``capability`` is unlocked; at the top level every name is, plugins' too."""
    return level_for(completed, levels).unlocks_all or capability in capabilities_at(completed, levels)


def unlocking_level(capability: str, levels: tuple[Level, ...] = LEVELS) -> Level:
    """The level that unlocks ``capability`` (the top level for names no level lists)."""
    for level in levels:
        if capability in level.capabilities:
            return level
    return next(level for level in levels if level.unlocks_all)


def progress(completed: int, levels: tuple[Level, ...] = LEVELS) -> Progress:
    """Level, XP and distance to the next level after ``completed`` successful missions."""
    current = level_for(completed, levels)
    later = [level for level in levels if level.min_missions > current.min_missions]
    xp = completed * XP_PER_MISSION
    if not later:
        return Progress(current, xp, None, None, 1.0)
    upcoming = later[0]
    span = upcoming.min_missions - current.min_missions
    done = completed - current.min_missions
    return Progress(current, xp, upcoming, upcoming.min_missions - completed, done / span)


def evolution_settings(mapping: Mapping[str, Any] | None) -> EvolutionSettings:
    """Levels and matrix limit from a policy's `evolution` mapping (validated by check_evolution)."""
    if not mapping:
        return DEFAULT_EVOLUTION
    overrides = mapping.get("levels") or {}
    levels = tuple(
        replace(level, min_missions=int(overrides.get(level.name, level.min_missions)))
        for level in LEVELS
    )
    limit = mapping.get("spawn_matrix_above")
    return EvolutionSettings(levels, int(limit) if limit is not None else None)


def check_evolution(mapping: Mapping[str, Any], where: Location) -> list[Diagnostic]:
    """Located errors in a policy's `evolution` mapping."""
    found = [
        Diagnostic(where, f"evolution: unknown key '{key}'", "known keys: levels, spawn_matrix_above")
        for key in mapping
        if key not in ("levels", "spawn_matrix_above")
    ]
    limit = mapping.get("spawn_matrix_above")
    if limit is not None and not _is_count(limit):
        found.append(Diagnostic(where, "evolution: spawn_matrix_above must be a whole number >= 0"))
    overrides = mapping.get("levels")
    if overrides is not None:
        found += _check_levels(overrides, where)
    return found


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_levels(overrides: Any, where: Location) -> list[Diagnostic]:
    if not isinstance(overrides, Mapping):
        return [Diagnostic(where, "evolution: levels must map level names to completed missions")]
    found = []
    for name, value in overrides.items():
        if name not in LEVEL_NAMES:
            found.append(Diagnostic(where, f"evolution: unknown level '{name}'",
                                    f"levels: {', '.join(LEVEL_NAMES)}"))
        elif not _is_count(value):
            found.append(Diagnostic(where, f"evolution: level {name} needs a whole number >= 0"))
    if found:
        return found
    if overrides.get("DORMANT", 0) != 0:
        return [Diagnostic(where, "evolution: DORMANT always starts at 0 completed missions")]
    thresholds = [overrides.get(level.name, level.min_missions) for level in LEVELS]
    if any(low >= high for low, high in zip(thresholds, thresholds[1:])):
        return [Diagnostic(where, "evolution: level thresholds must increase from DORMANT to APEX",
                           ", ".join(f"{n} {t}" for n, t in zip(LEVEL_NAMES, thresholds)))]
    return found
