"""The six-axis score: each axis, the weighted total, bands and weight checks."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from nexusmon.errors import Location
from nexusmon.govern.facts import GovState, TaskFacts
from nexusmon.govern.scoring import (
    AXES,
    attention,
    band,
    check_scoring,
    compute_cost,
    economic_value,
    maintainability,
    prediction_confidence,
    score_task,
    trust,
)
from nexusmon.spec.model import Decision, Rank

BASE_TASK = TaskFacts(mission="m", task="t", category="forge", uses=None, worker="shell",
                      base_rank=Rank.E, worker_risk=Rank.D, text="make")


def task(**over: Any) -> TaskFacts:
    return replace(BASE_TASK, **over)


@pytest.mark.parametrize("worker,matrix,value", [
    ("noop", 1, 100), ("template", 1, 95), ("shell", 1, 75), ("llm", 1, 35), ("my-plugin", 1, 60),
    ("shell", 3, 65), ("noop", 100, 50),
])
def test_compute_cost(worker: str, matrix: int, value: int) -> None:
    assert compute_cost(task(worker=worker, matrix_size=matrix)) == value


def test_maintainability() -> None:
    assert maintainability(task()) == 80
    assert maintainability(task(uses="docs-build@2")) == 100
    assert maintainability(task(raw_interpolation=True, has_secrets=True, text="x" * 1001)) == 30


@pytest.mark.parametrize("rank,decision,value", [
    (Rank.E, Decision.AUTO, 100), (Rank.C, Decision.REVIEW, 60),
    (Rank.A, Decision.APPROVE, 25), (Rank.S, Decision.BLOCKED, 0),
])
def test_attention(rank: Rank, decision: Decision, value: int) -> None:
    assert attention(rank, decision) == value


def test_economic_value_by_category_and_cache() -> None:
    assert economic_value(task(category="coin"), GovState()) == 80
    assert economic_value(task(category="sanctuary"), GovState()) == 55
    assert economic_value(task(), GovState(cache_hit_rate=1.0)) == 90
    assert economic_value(task(), GovState(cache_hit_rate=0.0)) == 60


def test_trust_from_history_and_level() -> None:
    assert trust(GovState()) == 42
    assert trust(GovState(history_runs=10, history_failures=0, completed_missions=200)) == 100
    assert trust(GovState(history_runs=4, history_failures=2, completed_missions=10)) == 50
    assert trust(GovState(history_runs=3, history_failures=3)) == 0


@pytest.mark.parametrize("runs,value", [(0, 30), (5, 65), (20, 86), (1000, 100)])
def test_prediction_confidence_grows_with_history(runs: int, value: int) -> None:
    assert prediction_confidence(GovState(history_runs=runs)) == value


@pytest.mark.parametrize("total,name", [(100, "SAFE"), (60, "SAFE"), (59, "BORDERLINE"),
                                        (30, "BORDERLINE"), (29, "FAILING"), (0, "FAILING")])
def test_bands(total: int, name: str) -> None:
    assert band(total) == name


def test_total_is_the_equal_weight_mean_by_default() -> None:
    score = score_task(task(), GovState(), Rank.D, Decision.AUTO)
    assert dict(score.axes) == {"compute_cost": 75, "maintainability": 80, "attention": 90,
                                "economic_value": 70, "trust": 42, "prediction_confidence": 30}
    assert (score.total, score.band) == (65, "SAFE")


def test_weights_replace_the_named_axes() -> None:
    only_trust = {"weights": {axis: 0 for axis in AXES} | {"trust": 1}}
    failing = GovState(history_runs=5, history_failures=5)
    score = score_task(task(), failing, Rank.D, Decision.AUTO, only_trust)
    assert (score.total, score.band) == (0, "FAILING")
    tilted = score_task(task(), GovState(), Rank.D, Decision.AUTO, {"weights": {"attention": 4}})
    assert tilted.total == 73  # (75 + 80 + 4 * 90 + 70 + 42 + 30) / 9


def test_all_zero_weights_fall_back_to_equal() -> None:
    zero = {"weights": {axis: 0 for axis in AXES}}
    assert score_task(task(), GovState(), Rank.D, Decision.AUTO, zero).total == 65


def test_check_scoring_locates_unknown_axes_and_bad_weights() -> None:
    where = Location("policies/p.yaml", 8, 10)
    found = check_scoring({"weights": {"trsut": 2, "attention": -1}, "bands": {}}, where)
    assert [str(d) for d in found] == [
        "policies/p.yaml:8:10: error: scoring: unknown key 'bands' (the only key is 'weights')",
        "policies/p.yaml:8:10: error: scoring: unknown axis 'trsut' (did you mean 'trust'?)",
        "policies/p.yaml:8:10: error: scoring: weight of attention must be a number >= 0",
    ]
    assert check_scoring({"weights": {"trust": 2.5}}, where) == []
