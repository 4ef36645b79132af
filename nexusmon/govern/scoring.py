"""The six-axis score of a task.

Every axis is 0-100 and reads "higher is better" (cheaper, easier to keep,
less operator attention, more value, more trusted, better predicted):

- ``compute_cost``: worker base (noop 100, template 95, python 85, http 80,
  shell 75, mission 55, llm 35, plugin workers 60) minus 5 per matrix
  expansion beyond the first (at most 50).
- ``maintainability``: 80, +20 when the task comes from a rune call, -30 when
  the script interpolates a value with the ``raw`` filter, -10 when it gets
  secrets, -10 when the rendered script or parameters exceed 1000 characters.
- ``attention``: mean of the decision (auto 100, review 60, approve 30,
  blocked 0; the decision before scoring is applied) and the rank (E 100,
  D 80, C 60, B 40, A 20, S 0).
- ``economic_value``: category (coin 80, forge 70, library 65, sanctuary 55,
  other 60); when a cache hit rate is known, ``+ 30 * rate - 10``.
- ``trust``: ``round(0.7 * success + 0.3 * level)`` where ``success`` is the
  task's past success rate in percent (60 with no history) and ``level`` is
  25 per evolution level above DORMANT (APEX 100).
- ``prediction_confidence``: ``round(30 + 70 * runs / (runs + 5))`` over the
  task's past runs: 30 with none, 65 after 5, 86 after 20.

Rounding is half up. The total is the weighted mean ``round(sum(w * axis) / sum(w))``. Weights
default to 1; a policy ``scoring: {weights: {trust: 3, compute_cost: 0}}``
replaces the named ones. Bands: SAFE (total >= 60), BORDERLINE (30-59),
FAILING (< 30).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from nexusmon.errors import Diagnostic, Location
from nexusmon.govern.evolution import LEVELS, Level, level_for
from nexusmon.govern.facts import GovState, Score, TaskFacts
from nexusmon.spec.model import Decision, Rank

AXES = (
    "compute_cost",
    "maintainability",
    "attention",
    "economic_value",
    "trust",
    "prediction_confidence",
)
SAFE = "SAFE"
BORDERLINE = "BORDERLINE"
FAILING = "FAILING"

WORKER_COST = {"noop": 100, "template": 95, "python": 85, "http": 80, "shell": 75,
               "mission": 55, "llm": 35}
PLUGIN_COST = 60
CATEGORY_VALUE = {"coin": 80, "forge": 70, "library": 65, "sanctuary": 55}
OTHER_VALUE = 60
DECISION_ATTENTION = {Decision.AUTO: 100, Decision.REVIEW: 60, Decision.APPROVE: 30,
                      Decision.BLOCKED: 0}
LONG_TEXT = 1000


def _clamp(value: float) -> int:
    """Round half up (64.5 -> 65, unlike round()) and keep within 0..100."""
    return max(0, min(100, math.floor(value + 0.5)))


def compute_cost(facts: TaskFacts) -> int:
    base = WORKER_COST.get(facts.worker, PLUGIN_COST)
    return _clamp(base - min(50, 5 * (facts.matrix_size - 1)))


def maintainability(facts: TaskFacts) -> int:
    value = 80 + (20 if facts.uses else 0) - (30 if facts.raw_interpolation else 0)
    value -= (10 if facts.has_secrets else 0) + (10 if len(facts.text) > LONG_TEXT else 0)
    return _clamp(value)


def attention(rank: Rank, decision: Decision) -> int:
    return _clamp((DECISION_ATTENTION[decision] + 100 - 20 * int(rank)) / 2)


def economic_value(facts: TaskFacts, state: GovState) -> int:
    value = CATEGORY_VALUE.get(facts.category, OTHER_VALUE)
    rate = state.cache_hit_rate
    return _clamp(value if rate is None else value + 30 * rate - 10)


def trust(state: GovState, levels: tuple[Level, ...] = LEVELS) -> int:
    runs = state.history_runs
    success = 60.0 if runs <= 0 else 100 * max(0, runs - state.history_failures) / runs
    level_points = 25 * levels.index(level_for(state.completed_missions, levels))
    return _clamp(0.7 * success + 0.3 * level_points)


def prediction_confidence(state: GovState) -> int:
    runs = max(0, state.history_runs)
    return _clamp(30 + 70 * runs / (runs + 5))


def band(total: int) -> str:
    if total >= 60:
        return SAFE
    return BORDERLINE if total >= 30 else FAILING


def weights_from(scoring: Mapping[str, Any] | None) -> dict[str, float]:
    """Axis weights: 1 each, replaced by the policy's `scoring.weights`."""
    weights = {axis: 1.0 for axis in AXES}
    given = (scoring or {}).get("weights") or {}
    weights.update({axis: float(w) for axis, w in given.items() if axis in weights})
    return weights


def score_task(
    facts: TaskFacts,
    state: GovState,
    rank: Rank,
    decision: Decision,
    scoring: Mapping[str, Any] | None = None,
    levels: tuple[Level, ...] = LEVELS,
) -> Score:
    """Score one task at its effective ``rank`` and pre-scoring ``decision``."""
    axes = {
        "compute_cost": compute_cost(facts),
        "maintainability": maintainability(facts),
        "attention": attention(rank, decision),
        "economic_value": economic_value(facts, state),
        "trust": trust(state, levels),
        "prediction_confidence": prediction_confidence(state),
    }
    weights = weights_from(scoring)
    total_weight = sum(weights.values())
    if total_weight <= 0:
        weights, total_weight = {axis: 1.0 for axis in AXES}, float(len(AXES))
    total = _clamp(sum(weights[a] * v for a, v in axes.items()) / total_weight)
    return Score(axes, total, band(total))


def check_scoring(mapping: Mapping[str, Any], where: Location) -> list[Diagnostic]:
    """Located errors in a policy's `scoring` mapping."""
    found = [Diagnostic(where, f"scoring: unknown key '{key}'", "the only key is 'weights'")
             for key in mapping if key != "weights"]
    weights = mapping.get("weights") or {}
    if not isinstance(weights, Mapping):
        return found + [Diagnostic(where, "scoring: weights must map axis names to numbers")]
    for axis, weight in weights.items():
        if axis not in AXES:
            close = difflib.get_close_matches(str(axis), AXES, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"axes: {', '.join(AXES)}"
            found.append(Diagnostic(where, f"scoring: unknown axis '{axis}'", hint))
        elif isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            found.append(Diagnostic(where, f"scoring: weight of {axis} must be a number >= 0"))
    if not found and sum(weights_from(mapping).values()) == 0:
        found.append(Diagnostic(where, "scoring: every axis has weight 0, so no score can be computed",
                                "give at least one axis a weight above 0"))
    return found
