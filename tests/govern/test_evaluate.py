"""Ranks, gates, deny, capabilities, omens, approval and score enforcement for one task."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from nexusmon.govern.evaluate import evaluate, explain
from nexusmon.govern.facts import GovState, TaskFacts
from nexusmon.govern.gates import DEFAULT_GATES
from nexusmon.govern.omens import omen_level
from nexusmon.spec.document import Document, JsonPath, Mark
from nexusmon.spec.model import Decision, OmenThresholds, Policy, Rank, Rule, RuleThen, RuleWhen

PATH = "policies/safety.yaml"


def rules(*specs: tuple[str, RuleWhen, RuleThen]) -> tuple[Rule, ...]:
    """Rules of one file; rule i starts on line 4 + 3*i."""
    doc = Document(PATH, None, "", values={("rules", i): (4 + 3 * i, 5) for i in range(len(specs))})
    return tuple(Rule(doc=doc, at=("rules", i), id=rid, when=when, then=then, policy="safety")
                 for i, (rid, when, then) in enumerate(specs))


def policy(*specs: tuple[str, RuleWhen, RuleThen], **fields: Any) -> Policy:
    """policies/safety.yaml; gates, omens, scoring, evolution keys on lines 20-23."""
    keys: dict[JsonPath, Mark] = {(key,): (20 + i, 1) for i, key in enumerate(("gates", "omens", "scoring", "evolution"))}
    doc = Document(PATH, None, "", keys=keys)
    empty = Policy(doc=doc, at=(), name="safety", rules=rules(*specs), gates=None, omens=None,
                   scoring=None, evolution=None, operators=(), tests=())
    return replace(empty, **fields)


BASE_TASK = TaskFacts(mission="deploy", task="apply", category="forge", uses=None, worker="shell",
                      base_rank=Rank.E, worker_risk=Rank.D, text="echo hello")


def task(**over: Any) -> TaskFacts:
    return replace(BASE_TASK, **over)


STATE = GovState()
TERRAFORM = ("infra-changes-need-approval",
             RuleWhen(worker=("shell",), run_matches=r"\b(kubectl|terraform)\s+apply\b"),
             RuleThen(rank=Rank.A))
WIPE = ("never-wipe-root", RuleWhen(run_matches=r"rm\s+-rf\s+/(\s|$)"),
        RuleThen(deny="refusing to delete the filesystem root"))
COMPANION = ("llm-needs-companion", RuleWhen(worker=("llm",)),
             RuleThen(require_capabilities=("COMPANION",)))


def reasons(verdict: object) -> list[str]:
    return [str(r) for r in verdict.reasons]  # type: ignore[attr-defined]


# ------------------------------------------------------------------- ranks


def test_rule_raises_rank_and_reason_names_rule_and_line() -> None:
    verdict = evaluate(task(text="terraform apply -auto-approve", declared_rank=Rank.D),
                       [policy(TERRAFORM)], STATE)
    assert (verdict.rank, verdict.decision) == (Rank.A, Decision.APPROVE)
    assert reasons(verdict) == [
        "rank A from rule infra-changes-need-approval (policies/safety.yaml:4)",
        "declared rank D cannot lower rank A: ranks are only ever raised",
        "default gate A: approve",
    ]


def test_mission_floor_is_never_lowered_by_the_task_rank() -> None:
    # compile gives base_rank = max(floor C, task D)
    verdict = evaluate(task(worker="noop", worker_risk=Rank.E, base_rank=Rank.C,
                            declared_rank=Rank.D), [], STATE)
    assert (verdict.rank, verdict.decision) == (Rank.C, Decision.REVIEW)
    assert "declared rank D cannot lower rank C: ranks are only ever raised" in reasons(verdict)


def test_worker_risk_is_a_floor() -> None:
    verdict = evaluate(task(worker="llm", worker_risk=Rank.C), [], STATE)
    assert verdict.rank == Rank.C
    assert reasons(verdict)[0] == "rank C from worker llm risk level"


def test_rule_with_lower_rank_never_lowers() -> None:
    lower = ("calm", RuleWhen(worker=("shell",)), RuleThen(rank=Rank.E))
    verdict = evaluate(task(base_rank=Rank.B), [policy(lower)], STATE)
    assert verdict.rank == Rank.B


def test_rank_raises_reach_a_fixpoint_before_rank_at_least() -> None:
    chain = (
        ("secrets-are-b", RuleWhen(has_secrets=True), RuleThen(rank=Rank.B)),
        ("b-and-up-are-a", RuleWhen(rank_at_least=Rank.B), RuleThen(rank=Rank.A)),
        ("a-needs-sovereign", RuleWhen(rank_at_least=Rank.A),
         RuleThen(require_capabilities=("OPERATOR_FUSION",))),
    )
    verdict = evaluate(task(has_secrets=True), [policy(*chain)], STATE)
    assert verdict.rank == Rank.A
    assert verdict.decision == Decision.BLOCKED
    assert verdict.required_capabilities == ("OPERATOR_FUSION",)
    assert evaluate(task(), [policy(*chain)], STATE).rank == Rank.D


# ------------------------------------------------------------------- gates


@pytest.mark.parametrize("rank,decision", [
    (Rank.E, "auto"), (Rank.D, "auto"), (Rank.C, "review"),
    (Rank.B, "review"), (Rank.A, "approve"), (Rank.S, "approve"),
])
def test_default_gates(rank: Rank, decision: str) -> None:
    verdict = evaluate(task(worker="noop", worker_risk=Rank.E, base_rank=rank), [], STATE)
    assert (verdict.rank, verdict.decision.value) == (rank, decision)
    assert DEFAULT_GATES[rank].value == decision


def test_policy_gates_override_defaults_and_are_located() -> None:
    strict = policy(gates={Rank.E: Decision.REVIEW, Rank.D: Decision.REVIEW, Rank.C: Decision.APPROVE})
    low = evaluate(task(worker="noop", worker_risk=Rank.E), [strict], STATE)
    assert low.decision == Decision.REVIEW
    assert "gate E: review (policies/safety.yaml:20)" in reasons(low)
    assert evaluate(task(base_rank=Rank.C), [strict], STATE).decision == Decision.APPROVE
    assert evaluate(task(base_rank=Rank.B), [strict], STATE).decision == Decision.REVIEW  # default


def test_gate_may_block_a_rank() -> None:
    verdict = evaluate(task(base_rank=Rank.S), [policy(gates={Rank.S: Decision.BLOCKED})], STATE)
    assert verdict.decision == Decision.BLOCKED


# -------------------------------------------------------------------- deny


def test_deny_blocks_and_takes_precedence_over_approve() -> None:
    verdict = evaluate(task(text="terraform apply && rm -rf / "), [policy(TERRAFORM, WIPE)], STATE)
    assert (verdict.rank, verdict.decision) == (Rank.A, Decision.BLOCKED)
    assert ("denied by rule never-wipe-root: refusing to delete the filesystem root "
            "(policies/safety.yaml:7)") in reasons(verdict)


def test_deny_does_not_touch_tasks_it_does_not_match() -> None:
    verdict = evaluate(task(text="rm -rf ./build"), [policy(WIPE)], STATE)
    assert verdict.decision == Decision.AUTO


def test_rank_at_least_deny_applies_after_raises() -> None:
    no_s = ("no-s-rank", RuleWhen(rank_at_least=Rank.S), RuleThen(deny="nothing that risky"))
    raise_s = ("prod-is-s", RuleWhen(mission="prod"), RuleThen(rank=Rank.S))
    assert evaluate(task(mission="prod"), [policy(raise_s, no_s)], STATE).decision == Decision.BLOCKED
    assert evaluate(task(base_rank=Rank.A), [policy(raise_s, no_s)], STATE).decision == Decision.APPROVE


# ------------------------------------------------------------ capabilities


def test_missing_capability_blocks_until_enough_missions_complete() -> None:
    llm = task(worker="llm", worker_risk=Rank.C)
    blocked = evaluate(llm, [policy(COMPANION)], GovState(completed_missions=0))
    assert blocked.decision == Decision.BLOCKED
    assert ("rule llm-needs-companion requires capability COMPANION, unlocked at level AWAKENING "
            "(1 completed mission) (policies/safety.yaml:4)") in reasons(blocked)
    allowed = evaluate(llm, [policy(COMPANION)], GovState(completed_missions=1))
    assert allowed.decision == Decision.REVIEW
    assert allowed.required_capabilities == ("COMPANION",)


def test_worker_capabilities_are_required_too() -> None:
    spawner = task(worker="fleet", worker_capabilities=("WORKER_SPAWN",))
    verdict = evaluate(spawner, [], GovState(completed_missions=9))
    assert verdict.decision == Decision.BLOCKED
    assert ("worker fleet requires capability WORKER_SPAWN, unlocked at level FORGING "
            "(10 completed missions)") in reasons(verdict)
    assert evaluate(spawner, [], GovState(completed_missions=10)).decision == Decision.AUTO


def test_unknown_capability_is_unlocked_only_at_apex() -> None:
    gpu = task(worker="cuda", worker_capabilities=("GPU_ACCESS",))
    verdict = evaluate(gpu, [], GovState(completed_missions=199))
    assert "worker cuda requires capability GPU_ACCESS, unlocked at level APEX (200 completed missions)" \
        in reasons(verdict)
    assert evaluate(gpu, [], GovState(completed_missions=200)).decision == Decision.AUTO


def test_matrix_size_needs_worker_spawn_when_evolution_sets_a_limit() -> None:
    limited = policy(evolution={"spawn_matrix_above": 3})
    big = evaluate(task(matrix_size=4), [limited], STATE)
    assert big.decision == Decision.BLOCKED
    assert ("matrix of 4 tasks (more than 3) requires capability WORKER_SPAWN, unlocked at level "
            "FORGING (10 completed missions) (policies/safety.yaml:23)") in reasons(big)
    assert evaluate(task(matrix_size=3), [limited], STATE).decision == Decision.AUTO
    assert evaluate(task(matrix_size=50), [], STATE).decision == Decision.AUTO


def test_evolution_levels_override_moves_the_unlock() -> None:
    early = policy(("spawn", RuleWhen(), RuleThen(require_capabilities=("WORKER_SPAWN",))),
                   evolution={"levels": {"FORGING": 5}})
    verdict = evaluate(task(), [early], GovState(completed_missions=4))
    assert "unlocked at level FORGING (5 completed missions)" in " ".join(reasons(verdict))
    assert evaluate(task(), [early], GovState(completed_missions=5)).decision == Decision.AUTO


# ------------------------------------------------------------------- omens


@pytest.mark.parametrize("count,level", [(0, None), (2, None), (3, "warn"), (6, "warn"),
                                         (7, "intervene"), (12, "intervene"), (13, "lock")])
def test_omen_level_thresholds(count: int, level: str | None) -> None:
    assert omen_level(count, OmenThresholds()) == level


def omens_at(count: int, *policies: Policy) -> object:
    return evaluate(task(), list(policies), GovState(omen_counts={("deploy", "apply"): count,
                                                                  ("deploy", "other"): 99}))


def test_omen_warn_keeps_the_decision_but_says_so() -> None:
    verdict = omens_at(3)
    assert (verdict.decision, verdict.omen_level) == (Decision.AUTO, "warn")  # type: ignore[attr-defined]
    assert "omen warn: 3 repeated failures (warn at 3)" in reasons(verdict)


def test_omen_intervene_needs_approval_and_lock_blocks() -> None:
    assert omens_at(7).decision == Decision.APPROVE  # type: ignore[attr-defined]
    locked = omens_at(13)
    assert locked.decision == Decision.BLOCKED  # type: ignore[attr-defined]
    assert ("omen lock: 13 repeated failures (lock at 13); blocked until `nexusmon omens clear`"
            in reasons(locked))


def test_policy_omen_thresholds_apply_and_are_located() -> None:
    quick = policy(omens=OmenThresholds(warn=1, intervene=2, lock=3))
    intervene = omens_at(2, quick)
    assert intervene.decision == Decision.APPROVE  # type: ignore[attr-defined]
    assert ("omen intervene: 2 repeated failures need approval (intervene at 2) "
            "(policies/safety.yaml:21)") in reasons(intervene)
    assert omens_at(0, quick).omen_level is None  # type: ignore[attr-defined]


# ---------------------------------------------------------------- approval


def test_worker_requiring_approval_needs_approval() -> None:
    verdict = evaluate(task(worker="pager", worker_requires_approval=True), [], STATE)
    assert verdict.decision == Decision.APPROVE
    assert "worker pager requires approval" in reasons(verdict)
    denied = evaluate(task(worker_requires_approval=True, text="rm -rf /"), [policy(WIPE)], STATE)
    assert denied.decision == Decision.BLOCKED


def test_approvers_from_matching_rules() -> None:
    alice = ("prod-by-alice", RuleWhen(mission="deploy"), RuleThen(rank=Rank.A, approvers=("alice",)))
    bob = ("shell-by-bob", RuleWhen(worker=("shell",)), RuleThen(approvers=("bob", "alice")))
    verdict = evaluate(task(), [policy(alice, bob)], STATE)
    assert verdict.approvers == ("alice", "bob")
    assert "approvers alice from rule prod-by-alice (policies/safety.yaml:4)" in reasons(verdict)


def test_raw_interpolation_is_visible_in_reasons() -> None:
    verdict = evaluate(task(raw_interpolation=True), [], STATE)
    assert "the script interpolates a value unquoted with the raw filter" in reasons(verdict)


# ----------------------------------------------------------------- scoring

# llm, big matrix, raw + secrets + long script, rank S, failing history: total 28 (FAILING)
POOR = task(worker="llm", worker_risk=Rank.C, base_rank=Rank.S, matrix_size=11,
            raw_interpolation=True, has_secrets=True, text="x" * 1001, category="sanctuary")
POOR_HISTORY = GovState(history_runs=10, history_failures=10, cache_hit_rate=0.0)


def test_score_is_shown_but_not_enforced_without_a_scoring_policy() -> None:
    verdict = evaluate(POOR, [], POOR_HISTORY)
    assert verdict.score is not None and verdict.score.band == "FAILING"
    assert verdict.decision == Decision.APPROVE
    assert not any(r.code == "score" for r in verdict.reasons)


def test_failing_score_blocks_when_a_policy_defines_scoring() -> None:
    verdict = evaluate(POOR, [policy(scoring={})], POOR_HISTORY)
    assert verdict.score is not None and verdict.score.total == 28
    assert verdict.decision == Decision.BLOCKED
    assert "score 28 is FAILING and is blocked (policies/safety.yaml:22)" in reasons(verdict)


def test_borderline_score_needs_approval_when_enforced() -> None:
    llm = task(worker="llm", worker_risk=Rank.C)  # new llm task at DORMANT: 48
    assert evaluate(llm, [], STATE).decision == Decision.REVIEW
    verdict = evaluate(llm, [policy(scoring={"weights": {}})], STATE)
    assert verdict.score is not None and verdict.score.band == "BORDERLINE"
    assert verdict.decision == Decision.APPROVE


def test_safe_score_changes_nothing_when_enforced() -> None:
    verdict = evaluate(task(), [policy(scoring={})], GovState(history_runs=20, completed_missions=12))
    assert verdict.score is not None and verdict.score.band == "SAFE"
    assert verdict.decision == Decision.AUTO


# ----------------------------------------------------------------- output


def test_verdict_json_has_string_reasons() -> None:
    doc = evaluate(task(text="terraform apply"), [policy(TERRAFORM)], STATE).as_json()
    assert doc["rank"] == "A" and doc["decision"] == "approve"
    assert all(isinstance(r, str) for r in doc["reasons"])
    assert set(doc["score"]["axes"]) == {"compute_cost", "maintainability", "attention",
                                         "economic_value", "trust", "prediction_confidence"}


def test_explain_walks_through_every_rule_and_step() -> None:
    lines = explain(task(text="terraform apply", has_secrets=True),
                    [policy(TERRAFORM, WIPE, COMPANION)], STATE)
    text = "\n".join(lines)
    assert "rule infra-changes-need-approval (policies/safety.yaml:4) raises rank D to A" in lines
    assert ("  rule infra-changes-need-approval (policies/safety.yaml:4): matched -> rank A") in lines
    assert (r"  rule never-wipe-root (policies/safety.yaml:7): not matched "
            r"(run_matches 'rm\s+-rf\s+/(\s|$)' not found)") in lines
    assert ("  rule llm-needs-companion (policies/safety.yaml:10): not matched "
            "(worker 'shell' not in [llm])") in lines
    assert "default gate A: approve" in lines
    assert "evolution level DORMANT (0 completed missions)" in lines
    assert "omens: 0 repeated failures (warn 3, intervene 7, lock 13): none" in lines
    assert "shown only: no policy defines scoring" in text
    assert lines[-1] == "decision approve"


def test_explain_reports_missing_capabilities() -> None:
    lines = explain(task(worker="llm", worker_risk=Rank.C), [policy(COMPANION)], STATE)
    assert ("capability COMPANION required by rule llm-needs-companion: missing, unlocked at level "
            "AWAKENING (1 completed mission)") in lines
    assert lines[-1] == "decision blocked"
