"""Deciding what governance allows for one task.

Order of evaluation:

1. Rank: start from ``max(base rank, worker risk)``; apply every matching rule's
   ``then.rank`` and repeat until the rank stops rising (a raise can make a
   ``rank_at_least`` rule match). Ranks only rise: nothing lowers them.
2. With that final rank, collect the matching rules (``rank_at_least`` compares
   the final rank) for deny, capabilities and approvers.
3. Decision: the gate for the rank, then, each at least as strict as before:
   a matching ``deny`` blocks; a required capability the current evolution
   level lacks blocks; an omen lock blocks; an omen ``intervene`` or a worker
   that requires approval needs approval; when some policy defines
   ``scoring``, BORDERLINE needs approval and FAILING blocks.

Every reason that comes from a rule names the rule and its ``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from msgspec import Struct

from nexusmon.govern.evolution import (
    EvolutionSettings,
    evolution_settings,
    has_capability,
    level_for,
    unlocking_level,
)
from nexusmon.govern.facts import GovState, Reason, Score, TaskFacts, Verdict, short_location
from nexusmon.govern.gates import STRICTNESS, PolicySettings, effective_settings
from nexusmon.govern.omens import INTERVENE, LOCK, WARN, omen_level
from nexusmon.govern.rules import all_rules, matching_rules, mismatches, rule_matches
from nexusmon.govern.scoring import BORDERLINE, FAILING, score_task
from nexusmon.spec.model import Decision, Policy, Rank, Rule

WORKER_SPAWN = "WORKER_SPAWN"


class Need(Struct, frozen=True):
    """One capability a task requires and what requires it."""

    capability: str
    source: str  # "rule X", "worker llm", "matrix of 6 tasks"
    rule: Rule | None = None
    location: str | None = None  # where policy sets what requires it, when not a rule


def at_least(decision: Decision, floor: Decision) -> Decision:
    """The stricter of two decisions."""
    return max(decision, floor, key=STRICTNESS.index)


def rule_reason(code: str, message: str, rule: Rule) -> Reason:
    return Reason(code, message, rule.id, short_location(rule.loc()))


def effective_rank(facts: TaskFacts, rules: Sequence[Rule]) -> Rank:
    """Base rank and worker risk raised by matching rules until it stops rising."""
    rank = max(facts.base_rank, facts.worker_risk)
    while True:
        raised = [r.then.rank for r in rules if r.then.rank is not None and rule_matches(r, facts, rank)]
        new = max([rank, *raised])
        if new == rank:
            return rank
        rank = new


def capability_needs(facts: TaskFacts, matched: Sequence[Rule], settings: PolicySettings) -> tuple[Need, ...]:
    """Capabilities required by matching rules, the worker and the matrix size."""
    needs = [Need(cap, f"rule {r.id}", r) for r in matched for cap in r.then.require_capabilities]
    needs += [Need(cap, f"worker {facts.worker}") for cap in facts.worker_capabilities]
    limit = evolution_settings(settings.evolution).spawn_matrix_above
    if limit is not None and facts.matrix_size > limit:  # set by the policy that defines `evolution`
        origin = settings.origins.get("evolution")
        needs.append(Need(WORKER_SPAWN, f"matrix of {facts.matrix_size} tasks (more than {limit})",
                          location=short_location(origin) if origin else None))
    return tuple(needs)


def _missions(count: int) -> str:
    return f"{count} completed mission{'' if count == 1 else 's'}"


def _rank_reasons(facts: TaskFacts, rank: Rank, matched: Sequence[Rule]) -> list[Reason]:
    setters = [r for r in matched if r.then.rank == rank]
    if setters:
        reasons = [rule_reason("rank", f"rank {rank.name} from rule {r.id}", r) for r in setters]
    elif facts.worker_risk >= facts.base_rank:
        reasons = [Reason("rank", f"rank {rank.name} from worker {facts.worker} risk level")]
    else:
        reasons = [Reason("rank", f"rank {rank.name} from mission/task rank")]
    if facts.declared_rank is not None and facts.declared_rank < rank:
        reasons.append(Reason("rank", f"declared rank {facts.declared_rank.name} cannot lower rank "
                                      f"{rank.name}: ranks are only ever raised"))
    return reasons


def _gate_reason(settings: PolicySettings, rank: Rank) -> Reason:
    origin = settings.origins.get("gates")
    if origin is None:
        return Reason("gate", f"default gate {rank.name}: {settings.gates[rank].value}")
    return Reason("gate", f"gate {rank.name}: {settings.gates[rank].value}", None, short_location(origin))


def _deny_reasons(matched: Sequence[Rule]) -> list[Reason]:
    return [rule_reason("deny", f"denied by rule {r.id}: {r.then.deny}", r)
            for r in matched if r.then.deny is not None]


def _capability_reasons(needs: Sequence[Need], completed: int, evo: EvolutionSettings) -> list[Reason]:
    reasons = []
    for need in needs:
        if has_capability(need.capability, completed, evo.levels):
            continue
        level = unlocking_level(need.capability, evo.levels)
        message = (f"{need.source} requires capability {need.capability}, unlocked at level "
                   f"{level.name} ({_missions(level.min_missions)})")
        rule = need.rule
        reasons.append(rule_reason("capability", message, rule) if rule
                       else Reason("capability", message, None, need.location))
    return reasons


def _omen_reasons(level: str | None, count: int, settings: PolicySettings) -> list[Reason]:
    origin = settings.origins.get("omens")
    where = short_location(origin) if origin else None
    t = settings.omens
    text = {
        WARN: f"omen warn: {count} repeated failures (warn at {t.warn})",
        INTERVENE: f"omen intervene: {count} repeated failures need approval (intervene at {t.intervene})",
        LOCK: f"omen lock: {count} repeated failures (lock at {t.lock}); "
              "blocked until `nexusmon omens clear`",
    }
    return [Reason("omen", text[level], None, where)] if level else []


def _score_reasons(score: Score, settings: PolicySettings) -> list[Reason]:
    origin = settings.origins.get("scoring")
    if origin is None or score.band not in (BORDERLINE, FAILING):
        return []
    effect = "needs approval" if score.band == BORDERLINE else "is blocked"
    return [Reason("score", f"score {score.total} is {score.band} and {effect}", None,
                   short_location(origin))]


def _other_reasons(facts: TaskFacts, matched: Sequence[Rule]) -> list[Reason]:
    reasons = [rule_reason("approvers", f"approvers {', '.join(r.then.approvers)} from rule {r.id}", r)
               for r in matched if r.then.approvers]
    if facts.worker_requires_approval:
        reasons.append(Reason("approval", f"worker {facts.worker} requires approval"))
    if facts.raw_interpolation:
        reasons.append(Reason("raw", "the script interpolates a value unquoted with the raw filter"))
    return reasons


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def evaluate(
    facts: TaskFacts,
    policies: Iterable[Policy],
    state: GovState,
    settings: PolicySettings | None = None,
    scored: bool = True,
) -> Verdict:
    """Rank, decision and reasons for one task (``settings`` defaults to the policies' merge).

    With ``scored`` false the six-axis score is left out (``None``) unless a policy defines
    ``scoring``, where it decides: a run needs no score that nobody enforces or shows.
    """
    ordered = tuple(policies)
    settings = settings or effective_settings(ordered)
    evo = evolution_settings(settings.evolution)
    rules = all_rules(ordered)
    rank = effective_rank(facts, rules)
    matched = matching_rules(rules, facts, rank)
    needs = capability_needs(facts, matched, settings)
    count = state.omen_count(facts.mission, facts.task)
    omen = omen_level(count, settings.omens)
    blocking = _deny_reasons(matched) + _capability_reasons(needs, state.completed_missions, evo)
    decision = settings.gates[rank]
    if blocking or omen == LOCK:
        decision = Decision.BLOCKED
    if omen == INTERVENE or facts.worker_requires_approval:
        decision = at_least(decision, Decision.APPROVE)
    score = (score_task(facts, state, rank, decision, settings.scoring, evo.levels)
             if scored or "scoring" in settings.origins else None)
    score_reasons = _score_reasons(score, settings) if score else []
    if score and score_reasons:
        floor = Decision.APPROVE if score.band == BORDERLINE else Decision.BLOCKED
        decision = at_least(decision, floor)
    reasons = _rank_reasons(facts, rank, matched) + [_gate_reason(settings, rank)] + blocking
    reasons += _omen_reasons(omen, count, settings) + _other_reasons(facts, matched) + score_reasons
    return Verdict(
        rank=rank,
        decision=decision,
        reasons=tuple(reasons),
        score=score,
        omen_level=omen,
        required_capabilities=_unique(n.capability for n in needs),
        approvers=_unique(name for r in matched for name in r.then.approvers),
    )


def explain(
    facts: TaskFacts,
    policies: Iterable[Policy],
    state: GovState,
    settings: PolicySettings | None = None,
) -> list[str]:
    """The derivation of one task's verdict, one step per line (for `plan --explain`)."""
    ordered = tuple(policies)
    settings = settings or effective_settings(ordered)
    evo = evolution_settings(settings.evolution)
    rules = all_rules(ordered)
    verdict = evaluate(facts, ordered, state, settings)
    rank = verdict.rank
    matched = matching_rules(rules, facts, rank)
    lines = [_describe(facts)] + _rank_steps(facts, rules)
    lines.append(f"rules checked at rank {rank.name}: {len(rules)}")
    lines += [f"  {_rule_line(rule, facts, rank)}" for rule in rules]
    lines.append(str(_gate_reason(settings, rank)))
    lines += _capability_lines(capability_needs(facts, matched, settings), state.completed_missions, evo)
    lines.append(_omen_line(facts, state, settings))
    if verdict.score is not None:
        lines.append(_score_line(verdict.score, settings))
    lines.append(f"decision {verdict.decision.value}")
    return lines


def _describe(facts: TaskFacts) -> str:
    extra = [f"uses {facts.uses}"] if facts.uses else []
    extra += [f"matrix of {facts.matrix_size}"] if facts.matrix_size > 1 else []
    extra += ["has secrets"] if facts.has_secrets else []
    return ", ".join([f"task {facts.mission}/{facts.task}: worker {facts.worker}",
                      f"category {facts.category}", *extra])


def _rank_steps(facts: TaskFacts, rules: Sequence[Rule]) -> list[str]:
    declared = f", declared {facts.declared_rank.name}" if facts.declared_rank is not None else ""
    rank = max(facts.base_rank, facts.worker_risk)
    lines = [f"base rank {facts.base_rank.name} (mission floor and task rank{declared})",
             f"worker {facts.worker} risk level {facts.worker_risk.name}",
             f"rank before policy {rank.name}"]
    while True:
        raises = [(r, r.then.rank) for r in rules
                  if r.then.rank is not None and r.then.rank > rank and rule_matches(r, facts, rank)]
        if not raises:
            return lines + [f"effective rank {rank.name}"]
        lines += [f"rule {r.id} ({short_location(r.loc())}) raises rank {rank.name} to {to.name}"
                  for r, to in raises]
        rank = max([rank, *(to for _, to in raises)])


def _effects(rule: Rule) -> str:
    then = rule.then
    parts = [f"rank {then.rank.name}"] if then.rank is not None else []
    parts += [f"deny: {then.deny}"] if then.deny is not None else []
    parts += [f"requires {', '.join(then.require_capabilities)}"] if then.require_capabilities else []
    parts += [f"approvers {', '.join(then.approvers)}"] if then.approvers else []
    return "; ".join(parts) or "no effect"


def _rule_line(rule: Rule, facts: TaskFacts, rank: Rank) -> str:
    head = f"rule {rule.id} ({short_location(rule.loc())})"
    misses = mismatches(rule, facts, rank)
    if misses:
        return f"{head}: not matched ({'; '.join(misses)})"
    return f"{head}: matched -> {_effects(rule)}"


def _capability_lines(needs: Sequence[Need], completed: int, evo: EvolutionSettings) -> list[str]:
    level = level_for(completed, evo.levels)
    lines = [f"evolution level {level.name} ({_missions(completed)})"]
    if not needs:
        return lines + ["capabilities required: none"]
    for need in needs:
        if has_capability(need.capability, completed, evo.levels):
            status = "held"
        else:
            unlock = unlocking_level(need.capability, evo.levels)
            status = f"missing, unlocked at level {unlock.name} ({_missions(unlock.min_missions)})"
        where = f" ({need.location})" if need.location else ""
        lines.append(f"capability {need.capability} required by {need.source}{where}: {status}")
    return lines


def _omen_line(facts: TaskFacts, state: GovState, settings: PolicySettings) -> str:
    count = state.omen_count(facts.mission, facts.task)
    t = settings.omens
    level = omen_level(count, t) or "none"
    return (f"omens: {count} repeated failures (warn {t.warn}, intervene {t.intervene}, "
            f"lock {t.lock}): {level}")


def _score_line(score: Score, settings: PolicySettings) -> str:
    axes = ", ".join(f"{axis} {value}" for axis, value in score.axes.items())
    origin = settings.origins.get("scoring")
    enforced = f"enforced ({short_location(origin)})" if origin else "shown only: no policy defines scoring"
    return f"score {score.total} {score.band} ({axes}); {enforced}"
