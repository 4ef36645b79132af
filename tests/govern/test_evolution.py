"""Evolution levels, accumulated capabilities, XP progress and threshold overrides."""

from __future__ import annotations

import pytest

from nexusmon.errors import Location
from nexusmon.govern.evolution import (
    XP_PER_MISSION,
    capabilities_at,
    check_evolution,
    evolution_settings,
    has_capability,
    level_for,
    progress,
    unlocking_level,
)

WHERE = Location("policies/default.yaml", 12, 12)


@pytest.mark.parametrize("completed,name", [
    (0, "DORMANT"), (1, "AWAKENING"), (9, "AWAKENING"), (10, "FORGING"), (49, "FORGING"),
    (50, "SOVEREIGN"), (199, "SOVEREIGN"), (200, "APEX"), (5000, "APEX"),
])
def test_level_by_completed_missions(completed: int, name: str) -> None:
    assert level_for(completed).name == name


def test_capabilities_accumulate() -> None:
    assert capabilities_at(0) == frozenset()
    assert capabilities_at(1) == {"RECALL", "COMPANION"}
    assert capabilities_at(10) == {"RECALL", "COMPANION", "WORKER_SPAWN", "BELIEF_TRACK"}
    assert capabilities_at(50) == {"RECALL", "COMPANION", "WORKER_SPAWN", "BELIEF_TRACK",
                                   "AUTONOMOUS_CHAIN", "OPERATOR_FUSION"}
    assert capabilities_at(200) == capabilities_at(50)


def test_apex_holds_every_capability_even_plugin_ones() -> None:
    assert not has_capability("GPU_ACCESS", 199)
    assert has_capability("GPU_ACCESS", 200)
    assert has_capability("AUTONOMOUS_CHAIN", 50) and not has_capability("AUTONOMOUS_CHAIN", 49)


@pytest.mark.parametrize("capability,level,missions", [
    ("RECALL", "AWAKENING", 1), ("COMPANION", "AWAKENING", 1),
    ("WORKER_SPAWN", "FORGING", 10), ("BELIEF_TRACK", "FORGING", 10),
    ("AUTONOMOUS_CHAIN", "SOVEREIGN", 50), ("OPERATOR_FUSION", "SOVEREIGN", 50),
    ("SOMETHING_ELSE", "APEX", 200),
])
def test_unlocking_level(capability: str, level: str, missions: int) -> None:
    found = unlocking_level(capability)
    assert (found.name, found.min_missions) == (level, missions)


def test_progress_counts_xp_and_distance_to_next_level() -> None:
    start = progress(0)
    assert (start.level.name, start.xp, start.missions_to_next, start.fraction) == ("DORMANT", 0, 1, 0.0)
    assert start.next_level is not None and start.next_level.name == "AWAKENING"
    mid = progress(30)
    assert mid.xp == 30 * XP_PER_MISSION == 3000
    assert mid.level.name == "FORGING" and mid.missions_to_next == 20
    assert mid.fraction == pytest.approx(0.5)
    top = progress(250)
    assert (top.level.name, top.next_level, top.missions_to_next, top.fraction) == ("APEX", None, None, 1.0)


def test_policy_override_moves_thresholds() -> None:
    settings = evolution_settings({"levels": {"FORGING": 5, "SOVEREIGN": 20}})
    assert level_for(5, settings.levels).name == "FORGING"
    assert level_for(20, settings.levels).name == "SOVEREIGN"
    assert level_for(199, settings.levels).name == "SOVEREIGN"
    assert "WORKER_SPAWN" in capabilities_at(5, settings.levels)
    assert unlocking_level("WORKER_SPAWN", settings.levels).min_missions == 5
    assert progress(4, settings.levels).missions_to_next == 1
    assert settings.spawn_matrix_above is None
    assert evolution_settings({"spawn_matrix_above": 3}).spawn_matrix_above == 3


@pytest.mark.parametrize("mapping,message", [
    ({"levels": {"FORGIN": 5}}, ("evolution: unknown level 'FORGIN' "
                                "(levels: DORMANT, AWAKENING, FORGING, SOVEREIGN, APEX)")),
    ({"levels": {"FORGING": -1}}, "evolution: level FORGING needs a whole number >= 0"),
    ({"levels": {"DORMANT": 2}}, "evolution: DORMANT always starts at 0 completed missions"),
    ({"levels": {"FORGING": 60}}, ("evolution: level thresholds must increase from DORMANT to APEX "
                                  "(DORMANT 0, AWAKENING 1, FORGING 60, SOVEREIGN 50, APEX 200)")),
    ({"spawn_matrix_above": "many"}, "evolution: spawn_matrix_above must be a whole number >= 0"),
    ({"level": {}}, "evolution: unknown key 'level' (known keys: levels, spawn_matrix_above)"),
])
def test_invalid_overrides_are_located(mapping: dict[str, object], message: str) -> None:
    assert [str(d) for d in check_evolution(mapping, WHERE)] == [
        f"policies/default.yaml:12:12: error: {message}"
    ]


def test_valid_override_has_no_diagnostics() -> None:
    assert check_evolution({"levels": {"AWAKENING": 2, "APEX": 100}, "spawn_matrix_above": 0}, WHERE) == []
