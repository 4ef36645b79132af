"""Rule matching (`when` keys) and the policy checks `nexusmon validate` reports."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from nexusmon.errors import InvalidFiles
from nexusmon.govern.facts import TaskFacts
from nexusmon.govern.gates import DEFAULT_GATES, check_policies, effective_settings
from nexusmon.govern.rules import mismatches, rule_matches
from nexusmon.spec.document import Document, JsonPath, Mark
from nexusmon.spec.model import (
    Decision,
    OmenThresholds,
    Operator,
    Policy,
    Rank,
    Rule,
    RuleThen,
    RuleWhen,
)

RULE_LINE = 4
REGEX_POS = (5, 30)


RAISE_B = RuleThen(rank=Rank.B)
KEY = "ed25519:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # 32 bytes: a well-formed Ed25519 public key


def make_rule(rule_id: str, when: RuleWhen, then: RuleThen = RAISE_B,
              path: str = "policies/p.yaml", index: int = 0) -> Rule:
    line = RULE_LINE + 10 * index
    values = {
        ("rules", index): (line, 5),
        ("rules", index, "when", "run_matches"): (REGEX_POS[0] + 10 * index, REGEX_POS[1]),
        ("rules", index, "then", "require_capabilities", 0): (line + 2, 33),
        ("rules", index, "then", "approvers", 0): (line + 2, 22),
    }
    doc = Document(path, None, "", values=values)
    return Rule(doc=doc, at=("rules", index), id=rule_id, when=when, then=then, policy="p")


def make_policy(name: str, line_of: dict[str, int] | None = None, **fields: Any) -> Policy:
    """A policy file; ``line_of`` puts top-level keys (gates, omens, ...) on those lines."""
    keys: dict[JsonPath, Mark] = {(key,): (line, 1) for key, line in (line_of or {}).items()}
    values: dict[JsonPath, Mark] = {(key,): (line, len(key) + 3) for key, line in (line_of or {}).items()}
    doc = Document(f"policies/{name}.yaml", None, "", values=values, keys=keys)
    empty = Policy(doc=doc, at=(), name=name, rules=(), gates=None, omens=None, scoring=None,
                   evolution=None, operators=(), tests=())
    return replace(empty, **fields)


def make_operator(policy: str, name: str, key: str, line: int) -> Operator:
    doc = Document(f"policies/{policy}.yaml", None, "",
                   values={("operators", 0, "name"): (line, 12), ("operators", 0, "public_key"): (line, 30)})
    return Operator(doc=doc, at=("operators", 0), name=name, public_key=key, may_approve=(Rank.A,))


BASE_FACTS = TaskFacts(
    mission="payroll", task="deploy-web", category="coin", uses="docs-build@2", worker="shell",
    base_rank=Rank.D, worker_risk=Rank.D, text="kubectl apply -f x.yaml", has_secrets=True,
)


def facts(**over: Any) -> TaskFacts:
    return replace(BASE_FACTS, **over)


# ------------------------------------------------------------------ when keys

MATCHING = {
    "mission glob": RuleWhen(mission="pay*"),
    "task glob": RuleWhen(task="deploy-*"),
    "uses glob": RuleWhen(uses="docs-*@*"),
    "category": RuleWhen(category="coin"),
    "worker name": RuleWhen(worker=("shell",)),
    "worker list": RuleWhen(worker=("noop", "shell")),
    "rank_at_least": RuleWhen(rank_at_least=Rank.D),
    "run_matches": RuleWhen(run_matches=r"\b(kubectl|terraform)\s+apply\b"),
    "has_secrets": RuleWhen(has_secrets=True),
    "empty when": RuleWhen(),
    "all keys": RuleWhen(mission="payroll", task="deploy-?eb", category="coin", worker=("shell",),
                         rank_at_least=Rank.E, run_matches="apply", has_secrets=True),
}

NOT_MATCHING = {
    "mission glob": (RuleWhen(mission="treasury*"), "mission 'payroll' does not match 'treasury*'"),
    "mission glob is case-sensitive": (RuleWhen(mission="Pay*"), "mission 'payroll' does not match 'Pay*'"),
    "task glob": (RuleWhen(task="build-*"), "task 'deploy-web' does not match 'build-*'"),
    "uses glob": (RuleWhen(uses="lint@*"), "uses 'docs-build@2' does not match 'lint@*'"),
    "category": (RuleWhen(category="forge"), "category 'coin' is not 'forge'"),
    "worker list": (RuleWhen(worker=("noop", "template")), "worker 'shell' not in [noop, template]"),
    "rank_at_least": (RuleWhen(rank_at_least=Rank.C), "rank D is below C"),
    "run_matches": (RuleWhen(run_matches=r"terraform\s+apply"), r"run_matches 'terraform\s+apply' not found"),
    "has_secrets": (RuleWhen(has_secrets=False), "has_secrets is true"),
    "one key of many": (RuleWhen(mission="pay*", category="forge"), "category 'coin' is not 'forge'"),
}


@pytest.mark.parametrize("case", sorted(MATCHING))
def test_when_key_matches(case: str) -> None:
    assert rule_matches(make_rule("r", MATCHING[case]), facts())


@pytest.mark.parametrize("case", sorted(NOT_MATCHING))
def test_when_key_does_not_match_and_says_why(case: str) -> None:
    when, why = NOT_MATCHING[case]
    rule = make_rule("r", when)
    assert not rule_matches(rule, facts())
    assert mismatches(rule, facts()) == [why]


def test_uses_never_matches_a_task_that_is_not_a_rune_call() -> None:
    rule = make_rule("r", RuleWhen(uses="*"))
    assert not rule_matches(rule, facts(uses=None))
    assert rule_matches(rule, facts())


def test_rank_at_least_compares_the_rank_given_so_far() -> None:
    rule = make_rule("r", RuleWhen(rank_at_least=Rank.A))
    assert not rule_matches(rule, facts())
    assert rule_matches(rule, facts(), Rank.A)
    assert rule_matches(rule, facts(worker_risk=Rank.S))


def test_run_matches_searches_anywhere_in_the_text() -> None:
    rule = make_rule("r", RuleWhen(run_matches=r"rm\s+-rf\s+/(\s|$)"))
    assert rule_matches(rule, facts(text="set -e\necho start\nrm -rf / \n"))
    assert rule_matches(rule, facts(text="rm -rf /"))
    assert not rule_matches(rule, facts(text="rm -rf ./build"))


def test_invalid_regex_is_a_located_error() -> None:
    bad = make_rule("bad-pattern", RuleWhen(run_matches="(unclosed"))
    good = make_rule("good", RuleWhen(run_matches="ok"), index=1)
    policy = make_policy("p", rules=(good, bad))
    found = check_policies([policy])
    assert [str(d) for d in found] == [
        ("policies/p.yaml:5:30: error: rule 'bad-pattern': invalid regular expression '(unclosed': "
        "missing ), unterminated subpattern at position 0")
    ]
    with pytest.raises(InvalidFiles) as raised:
        rule_matches(bad, facts())
    assert str(raised.value) == str(found[0])


# ----------------------------------------------------------- settings merge


def test_settings_default_when_no_policy_defines_them() -> None:
    settings = effective_settings([make_policy("p")])
    assert settings.gates == DEFAULT_GATES
    assert settings.omens == OmenThresholds(3, 7, 13)
    assert settings.scoring is None and settings.evolution is None
    assert dict(settings.origins) == {}


def test_settings_merge_each_key_from_its_file_and_operators_from_all() -> None:
    gates = {Rank.E: Decision.REVIEW}
    first = make_policy("a", {"gates": 3}, gates=gates,
                        operators=(make_operator("a", "alice", "ed25519:AAA", 9),))
    second = make_policy("b", {"omens": 2}, omens=OmenThresholds(1, 2, 3),
                         operators=(make_operator("b", "bob", "ed25519:BBB", 4),))
    settings = effective_settings([first, second])
    assert settings.gates[Rank.E] == Decision.REVIEW
    assert settings.gates[Rank.A] == Decision.APPROVE  # left out: default kept
    assert settings.omens == OmenThresholds(1, 2, 3)
    assert [op.name for op in settings.operators] == ["alice", "bob"]
    assert str(settings.origins["gates"]) == "policies/a.yaml:3:1"


def test_second_gates_definer_is_located_at_its_key() -> None:
    gates = dict(DEFAULT_GATES)
    first = make_policy("first", {"gates": 2}, gates=gates)
    second = make_policy("second", {"gates": 5}, gates=gates)
    assert [str(d) for d in check_policies([first, second])] == [
        ("policies/second.yaml:5:1: error: 'gates' is already defined in policies/first.yaml:2 "
        "(define gates in one policy file only)")
    ]


@pytest.mark.parametrize("key,value", [
    ("omens", OmenThresholds()),
    ("scoring", {"weights": {"trust": 2}}),
    ("evolution", {"levels": {"FORGING": 5}}),
])
def test_every_single_definer_key_is_checked(key: str, value: object) -> None:
    first = make_policy("first", {key: 2}, **{key: value})
    second = make_policy("second", {key: 7}, **{key: value})
    assert [(d.location.path, d.location.line) for d in check_policies([first, second])] == [
        ("policies/second.yaml", 7)
    ]


def test_duplicate_operator_name_and_key_across_files() -> None:
    first = make_policy("a", operators=(make_operator("a", "alice", KEY, 6),))
    second = make_policy("b", operators=(make_operator("b", "alice", KEY, 3),))
    assert [str(d) for d in check_policies([first, second])] == [
        "policies/b.yaml:3:12: error: operator 'alice' is already declared at policies/a.yaml:6",
        "policies/b.yaml:3:30: error: public key is already declared at policies/a.yaml:6",
    ]


def test_capability_typo_is_located_with_a_hint() -> None:
    rule = make_rule("llm-companion", RuleWhen(worker=("llm",)),
                     RuleThen(require_capabilities=("COMPANON",)))
    plugin_cap = make_rule("gpu", RuleWhen(worker=("cuda",)),
                           RuleThen(require_capabilities=("GPU_ACCESS",)), index=1)
    assert [str(d) for d in check_policies([make_policy("p", rules=(rule, plugin_cap))])] == [
        ("policies/p.yaml:6:33: error: rule 'llm-companion': unknown capability 'COMPANON' "
        "(did you mean 'COMPANION'?)")
    ]


def test_approver_must_be_a_declared_operator() -> None:
    rule = make_rule("prod", RuleWhen(mission="prod-*"), RuleThen(approvers=("alcie",)))
    policy = make_policy("p", rules=(rule,), operators=(make_operator("p", "alice", KEY, 9),))
    assert [str(d) for d in check_policies([policy])] == [
        ("policies/p.yaml:6:22: error: rule 'prod': approver 'alcie' is not a declared operator "
        "(did you mean 'alice'?)")
    ]


def test_omen_thresholds_must_rise() -> None:
    policy = make_policy("p", {"omens": 3}, omens=OmenThresholds(warn=5, intervene=2, lock=9))
    assert [str(d) for d in check_policies([policy])] == [
        ("policies/p.yaml:3:8: error: omens: need 1 <= warn <= intervene <= lock, "
        "got warn 5, intervene 2, lock 9")
    ]


def test_valid_policies_have_no_diagnostics() -> None:
    rule = make_rule("infra", RuleWhen(worker=("shell",), run_matches=r"\bapply\b"),
                     RuleThen(rank=Rank.A, require_capabilities=("COMPANION",)))
    policy = make_policy("p", {"gates": 2, "omens": 3, "scoring": 4, "evolution": 5}, rules=(rule,),
                         gates=dict(DEFAULT_GATES), omens=OmenThresholds(),
                         scoring={"weights": {"trust": 2}},
                         evolution={"levels": {"FORGING": 5}, "spawn_matrix_above": 3})
    assert check_policies([policy]) == []
