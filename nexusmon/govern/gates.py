"""Workspace-wide governance settings merged from every policy file, and their checks.

``gates``, ``omens``, ``scoring`` and ``evolution`` come from the one file that
defines each (a second definer is an error); ``operators`` from every file;
rules from every file. Gates a file leaves out keep their defaults, and the
merged gates may not get less strict as rank rises (else raising a task's rank
would escape a gate). Rule ids are unique across files: reasons name them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from msgspec import Struct, field

from nexusmon.errors import Diagnostic, Location
from nexusmon.govern.evolution import capability_typo, check_evolution
from nexusmon.govern.keys import OperatorKeyError, public_key_bytes
from nexusmon.govern.rules import (
    WorkerCatalog,
    all_rules,
    check_rule_patterns,
    check_rule_workers,
    check_test_workers,
)
from nexusmon.govern.scoring import check_scoring
from nexusmon.spec.model import Decision, OmenThresholds, Operator, Policy, Rank

DEFAULT_GATES: Mapping[Rank, Decision] = {
    Rank.E: Decision.AUTO,
    Rank.D: Decision.AUTO,
    Rank.C: Decision.REVIEW,
    Rank.B: Decision.REVIEW,
    Rank.A: Decision.APPROVE,
    Rank.S: Decision.APPROVE,
}
DEFAULT_OMENS = OmenThresholds()
SINGLE_DEFINER_KEYS = ("gates", "omens", "scoring", "evolution")
STRICTNESS = (Decision.AUTO, Decision.REVIEW, Decision.APPROVE, Decision.BLOCKED)


class PolicySettings(Struct, frozen=True):
    """Gates, omen thresholds, scoring, evolution and operators merged from every policy."""

    gates: Mapping[Rank, Decision] = field(default_factory=lambda: dict(DEFAULT_GATES))
    omens: OmenThresholds = DEFAULT_OMENS
    scoring: Mapping[str, Any] | None = None  # None: scores are shown, not enforced
    evolution: Mapping[str, Any] | None = None
    operators: tuple[Operator, ...] = ()
    origins: Mapping[str, Location] = field(default_factory=dict)  # key -> where it is defined


def _defined(policy: Policy, key: str) -> bool:
    return getattr(policy, key) is not None


def _definers(policies: Sequence[Policy], key: str) -> list[Policy]:
    return [policy for policy in policies if _defined(policy, key)]


def effective_settings(policies: Iterable[Policy]) -> PolicySettings:
    """Merge every policy file into one set of settings (first definer wins)."""
    ordered = list(policies)
    first = {key: _definers(ordered, key)[:1] for key in SINGLE_DEFINER_KEYS}
    gates = dict(DEFAULT_GATES)
    for policy in first["gates"]:
        gates.update(policy.gates or {})
    return PolicySettings(
        gates=gates,
        omens=next((p.omens for p in first["omens"] if p.omens), DEFAULT_OMENS),
        scoring=next((p.scoring for p in first["scoring"]), None),
        evolution=next((p.evolution for p in first["evolution"]), None),
        operators=tuple(op for policy in ordered for op in policy.operators),
        origins={key: found[0].key_loc(key) for key, found in first.items() if found},
    )


def check_policies(policies: Iterable[Policy], workers: WorkerCatalog | None = None) -> list[Diagnostic]:
    """Every located problem governance finds in the policy files as a whole.

    ``workers`` (the worker registry) also checks that each `when.worker` names a known worker.
    """
    ordered = list(policies)
    found = check_rule_patterns(ordered)
    if workers is not None:
        found += check_rule_workers(ordered, workers) + check_test_workers(ordered, workers)
    for key in SINGLE_DEFINER_KEYS:
        found += _second_definers(ordered, key)
    for policy in _definers(ordered, "gates")[:1]:  # a second definer is an error already
        found += _check_gate_order(policy, policy.gates or {})
    found += _duplicate_operators(ordered) + _bad_operator_keys(ordered) + _duplicate_rule_ids(ordered)
    found += _capability_typos(ordered) + _unknown_approvers(ordered)
    for policy in ordered:
        found += _check_values(policy)
    return found


def _second_definers(policies: Sequence[Policy], key: str) -> list[Diagnostic]:
    definers = _definers(policies, key)
    if len(definers) < 2:
        return []
    where = definers[0].key_loc(key)
    return [
        Diagnostic(p.key_loc(key), f"'{key}' is already defined in {where.path}:{where.line}",
                   f"define {key} in one policy file only")
        for p in definers[1:]
    ]


def _duplicate_operators(policies: Sequence[Policy]) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    names: dict[str, Location] = {}
    keys: dict[str, Location] = {}
    for op in (op for policy in policies for op in policy.operators):
        found += _duplicate(names, op.name, op.loc("name"), f"operator '{op.name}'")
        found += _duplicate(keys, op.public_key, op.loc("public_key"), "public key")
    return found


def _bad_operator_keys(policies: Sequence[Policy]) -> list[Diagnostic]:
    found = []
    for op in (op for policy in policies for op in policy.operators):
        try:
            public_key_bytes(op.public_key)
        except OperatorKeyError as exc:
            found.append(Diagnostic(op.loc("public_key"), f"operator '{op.name}': {exc}",
                                    "paste the `ed25519:...` line `nexusmon keygen` printed"))
    return found


def _duplicate_rule_ids(policies: Sequence[Policy]) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    ids: dict[str, Location] = {}
    for rule in all_rules(policies):
        found += _duplicate(ids, rule.id, rule.loc("id"), f"rule id '{rule.id}'",
                            "rule ids must be unique across policy files: reasons and tests name them")
    return found


def _duplicate(
    seen: dict[str, Location], value: str, where: Location, what: str, hint: str | None = None,
) -> list[Diagnostic]:
    if value not in seen:
        seen[value] = where
        return []
    first = seen[value]
    return [Diagnostic(where, f"{what} is already declared at {first.path}:{first.line}", hint)]


def _capability_typos(policies: Sequence[Policy]) -> list[Diagnostic]:
    found = []
    for rule in all_rules(policies):
        for i, name in enumerate(rule.then.require_capabilities):
            meant = capability_typo(name)
            if meant:
                found.append(Diagnostic(rule.loc("then", "require_capabilities", i),
                                        f"rule '{rule.id}': unknown capability '{name}'",
                                        f"did you mean '{meant}'?"))
    return found


def _unknown_approvers(policies: Sequence[Policy]) -> list[Diagnostic]:
    declared = sorted({op.name for policy in policies for op in policy.operators})
    found = []
    for rule in all_rules(policies):
        for i, name in enumerate(rule.then.approvers):
            if name in declared:
                continue
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "declare it under operators"
            found.append(Diagnostic(rule.loc("then", "approvers", i),
                                    f"rule '{rule.id}': approver '{name}' is not a declared operator",
                                    hint))
    return found


def _check_values(policy: Policy) -> list[Diagnostic]:
    found = []
    if policy.omens is not None:
        found += _check_omens(policy.omens, policy.loc("omens"))
    if policy.scoring is not None:
        found += check_scoring(policy.scoring, policy.loc("scoring"))
    if policy.evolution is not None:
        found += check_evolution(policy.evolution, policy.loc("evolution"))
    return found


def _check_omens(omens: OmenThresholds, where: Location) -> list[Diagnostic]:
    if 1 <= omens.warn <= omens.intervene <= omens.lock:
        return []
    return [Diagnostic(where, f"omens: need 1 <= warn <= intervene <= lock, got warn {omens.warn}, "
                              f"intervene {omens.intervene}, lock {omens.lock}")]


def _check_gate_order(policy: Policy, own: Mapping[Rank, Decision]) -> list[Diagnostic]:
    """Each rank's gate at least as strict as the rank below, with left-out gates at their defaults."""
    gates = {**DEFAULT_GATES, **own}
    found = []
    for lower, higher in zip(list(Rank), list(Rank)[1:]):
        if STRICTNESS.index(gates[higher]) >= STRICTNESS.index(gates[lower]):
            continue
        where = policy.loc("gates", (higher if higher in own else lower).name)
        found.append(Diagnostic(
            where, f"gates: {_gate(higher, gates, own)} is less strict than {_gate(lower, gates, own)} below it",
            "a gate must not get less strict as rank rises: auto < review < approve < blocked",
        ))
    return found


def _gate(rank: Rank, gates: Mapping[Rank, Decision], own: Mapping[Rank, Decision]) -> str:
    return f"{rank.name} '{gates[rank].value}'" + ("" if rank in own else " (the default)")
