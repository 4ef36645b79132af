"""`nexusmon policy test`: policy `tests:` entries, their results and rule coverage."""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from nexusmon.errors import Location
from nexusmon.govern.facts import GovState
from nexusmon.govern.policytest import BUILTIN_WORKERS, WorkerTraits, run_policy_tests
from nexusmon.spec.document import Document
from nexusmon.spec.model import (
    Constraints,
    Mission,
    Policy,
    PolicyTest,
    Rank,
    Rule,
    RuleThen,
    RuleWhen,
)

PATH = "policies/production-safety.yaml"
DOC = Document(PATH, None, "", values={
    ("rules", 0): (3, 5), ("rules", 1): (6, 5), ("rules", 2): (9, 5),
    **{("tests", i): (20 + 3 * i, 5) for i in range(10)},
    **{("tests", i, "task"): (21 + 3 * i, 11) for i in range(10)},
})

RULES = (
    Rule(doc=DOC, at=("rules", 0), id="infra-changes-need-approval", policy="production-safety",
         when=RuleWhen(worker=("shell",), run_matches=r"\b(kubectl|terraform)\s+apply\b"),
         then=RuleThen(rank=Rank.A)),
    Rule(doc=DOC, at=("rules", 1), id="llm-needs-companion", policy="production-safety",
         when=RuleWhen(worker=("llm",)), then=RuleThen(require_capabilities=("COMPANION",))),
    Rule(doc=DOC, at=("rules", 2), id="never-wipe-root", policy="production-safety",
         when=RuleWhen(run_matches=r"rm\s+-rf\s+/(\s|$)"),
         then=RuleThen(deny="refusing to delete the filesystem root")),
)

SPEC_TEST = ("terraform apply is gated",
             {"mission": "deploy", "worker": "shell", "run": "terraform apply -auto-approve"},
             {"rank": "A", "decision": "approve"})


def policy(*tests: tuple[str, dict[str, Any], dict[str, Any]], **fields: Any) -> Policy:
    records = tuple(PolicyTest(doc=DOC, at=("tests", i), name=name, task=task, expect=expect)
                    for i, (name, task, expect) in enumerate(tests))
    base = Policy(doc=DOC, at=(), name="production-safety", rules=RULES, gates=None, omens=None,
                  scoring=None, evolution=None, operators=(), tests=records)
    return replace(base, **fields)


def only(report: Any) -> Any:
    assert len(report.results) == 1
    return report.results[0]


def test_spec_example_passes_at_dormant() -> None:
    result = only(run_policy_tests([policy(SPEC_TEST)]))
    assert result.passed, result.message
    assert (result.policy, result.name) == ("production-safety", "terraform apply is gated")
    assert result.location == Location(PATH, 20, 5)
    assert result.message == "rank A, approve"


def test_broken_expectation_fails_with_what_differed() -> None:
    name, task, _ = SPEC_TEST
    report = run_policy_tests([policy((name, task, {"rank": "A", "decision": "auto"}))])
    result = only(report)
    assert not result.passed and not report.ok
    assert result.message == "expected decision auto, got approve"


def test_reasons_include() -> None:
    name, task, _ = SPEC_TEST
    ok = {"reasons_include": "infra-changes-need-approval"}
    missing = {"reasons_include": ["never-wipe-root"]}
    report = run_policy_tests([policy((name, task, ok), (name, task, missing))])
    assert [r.passed for r in report.results] == [True, False]
    assert report.results[1].message == (
        "no reason includes 'never-wipe-root' (reasons: rank A from rule infra-changes-need-approval "
        "(policies/production-safety.yaml:3); default gate A: approve)"
    )


def test_uncovered_rules_are_listed_with_their_location() -> None:
    report = run_policy_tests([policy(SPEC_TEST)])
    assert report.uncovered_rules == [
        ("llm-needs-companion", Location(PATH, 6, 5)),
        ("never-wipe-root", Location(PATH, 9, 5)),
    ]
    wipe = ("root wipe is denied", {"mission": "ops", "run": "rm -rf / "}, {"decision": "blocked"})
    llm = ("llm is blocked at dormant", {"mission": "ops", "worker": "llm", "with": {"prompt": "hi"}},
           {"decision": "blocked", "reasons_include": "COMPANION"})
    full = run_policy_tests([policy(SPEC_TEST, wipe, llm)])
    assert full.ok, [r.message for r in full.results]
    assert full.uncovered_rules == []


def test_completed_missions_and_level_set_the_evolution_state() -> None:
    task = {"mission": "ops", "worker": "llm"}
    tests = (
        ("dormant", task, {"decision": "blocked"}),
        ("one mission", {**task, "completed_missions": 1}, {"rank": "C", "decision": "review"}),
        ("awakening", {**task, "level": "AWAKENING"}, {"decision": "review"}),
    )
    report = run_policy_tests([policy(*tests)])
    assert report.ok, [r.message for r in report.results]
    # reproducible: the ledger's level and omens never leak into policy tests
    ledger = GovState(completed_missions=500, omen_counts={("ops", "task"): 99})
    assert run_policy_tests([policy(*tests)], state=ledger).ok


def test_mission_from_the_workspace_gives_category_and_floor() -> None:
    mission = Mission(doc=DOC, at=(), id="payroll", objective="pay", category="coin", rank=Rank.B,
                      inputs=(), env={}, secrets=(), constraints=Constraints(), tasks=())
    coin_rule = Rule(doc=DOC, at=("rules", 0), id="coin-is-a", policy="p",
                     when=RuleWhen(category="coin"), then=RuleThen(rank=Rank.A))
    tests = (
        ("floor", {"mission": "payroll", "worker": "noop", "rank": "D"}, {"rank": "A"}),
        ("unknown mission is forge", {"mission": "other", "worker": "noop"}, {"rank": "E"}),
        ("category given", {"mission": "other", "worker": "noop", "category": "coin"}, {"rank": "A"}),
    )
    with_coin = policy(*tests, rules=(coin_rule,))
    assert run_policy_tests([with_coin], missions=[mission]).ok
    floor_only = policy(tests[0], rules=())
    assert only(run_policy_tests([floor_only], missions=[mission])).message == "expected rank A, got B"


def test_plugin_workers_come_from_the_caller() -> None:
    test = ("plugin", {"mission": "ops", "worker": "pager"}, {"rank": "B", "decision": "approve"})
    unknown = only(run_policy_tests([policy(test)]))
    assert not unknown.passed
    assert unknown.message == "unknown worker 'pager'"
    assert unknown.location == Location(PATH, 21, 11)
    workers = {**BUILTIN_WORKERS, "pager": WorkerTraits(Rank.B, requires_approval=True)}
    assert only(run_policy_tests([policy(test)], workers=workers)).passed


def test_failures_reach_omen_thresholds() -> None:
    test = ("flaky", {"mission": "ops", "run": "make", "failures": 7}, {"decision": "approve"})
    assert only(run_policy_tests([policy(test)])).passed


def test_bad_test_entries_fail_instead_of_raising() -> None:
    tests = (
        ("no worker", {"mission": "ops"}, {"rank": "E"}),
        ("bad rank", {"mission": "ops", "worker": "noop", "rank": "Z"}, {"rank": "E"}),
        ("bad level", {"mission": "ops", "worker": "noop", "level": "GODLIKE"}, {"rank": "E"}),
    )
    report = run_policy_tests([policy(*tests)])
    assert [r.message for r in report.results] == [
        "a test task needs a worker or run",
        "rank must be one of E D C B A S, not 'Z'",
        "unknown level 'GODLIKE'",
    ]
