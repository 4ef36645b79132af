"""Running the `tests:` entries of policy files (`nexusmon policy test`).

Each entry describes a task by its facts and what governance must decide::

    tests:
      - name: terraform apply is gated
        task: {mission: deploy, worker: shell, run: "terraform apply -auto-approve"}
        expect: {rank: A, decision: approve, reasons_include: [infra-changes-need-approval]}

``task`` keys: ``mission`` (id; its category and floor rank come from the
workspace when the mission exists, else category ``forge`` and floor E),
``task`` (default ``task``), ``worker`` (default ``shell`` when ``run`` is
given), ``run``, ``with``, ``rank``, ``category``, ``uses``, ``has_secrets``,
``matrix_size``, and the state to evaluate in: ``completed_missions`` or
``level`` (a level name; default 0 missions, DORMANT) and ``failures`` (omen
count, default 0), so results never depend on the ledger; the ``state`` given
to :func:`run_policy_tests` only supplies scoring history. ``expect`` keys: ``rank``, ``decision``, ``reasons_include``
(text each expected to appear in some reason). A rule is covered when the
facts of at least one test match it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from nexusmon.errors import Location
from nexusmon.govern.evaluate import evaluate
from nexusmon.govern.evolution import evolution_settings
from nexusmon.govern.facts import GovState, TaskFacts, Verdict, params_text
from nexusmon.govern.gates import PolicySettings, effective_settings
from nexusmon.govern.rules import all_rules, rule_matches
from nexusmon.spec.model import Mission, Policy, PolicyTest, Rank, Rule

DEFAULT_TASK = "task"
DEFAULT_CATEGORY = "forge"


class WorkerTraits(Struct, frozen=True):
    """What governance needs to know about a worker (built-in or plugin)."""

    risk: Rank
    capabilities: tuple[str, ...] = ()
    requires_approval: bool = False


BUILTIN_WORKERS: Mapping[str, WorkerTraits] = {
    "noop": WorkerTraits(Rank.E),
    "template": WorkerTraits(Rank.E),
    "shell": WorkerTraits(Rank.D),
    "python": WorkerTraits(Rank.D),
    "http": WorkerTraits(Rank.D),
    "mission": WorkerTraits(Rank.C),
    "llm": WorkerTraits(Rank.C),
}


class TestResult(Struct, frozen=True):
    __test__ = False  # not a pytest test class

    policy: str
    name: str
    passed: bool
    message: str
    location: Location
    reasons: tuple[str, ...] = ()


class PolicyTestReport(Struct, frozen=True):
    results: list[TestResult]
    uncovered_rules: list[tuple[str, Location]]

    @property
    def ok(self) -> bool:
        return all(result.passed for result in self.results)


class _BadTest(Exception):
    """A test entry that cannot be turned into facts; becomes a failed result."""


class _Context(Struct, frozen=True):
    policies: tuple[Policy, ...]
    settings: PolicySettings
    state: GovState
    workers: Mapping[str, WorkerTraits]
    missions: Mapping[str, Mission]


def run_policy_tests(
    policies: Iterable[Policy],
    state: GovState | None = None,
    workers: Mapping[str, WorkerTraits] = BUILTIN_WORKERS,
    missions: Sequence[Mission] = (),
) -> PolicyTestReport:
    """Evaluate every policy test against all policies; report results and uncovered rules."""
    ordered = tuple(policies)
    ctx = _Context(ordered, effective_settings(ordered), state or GovState(), workers,
                   {m.id: m for m in missions})
    results: list[TestResult] = []
    covered: set[int] = set()
    rules = all_rules(ordered)
    for policy in ordered:
        for test in policy.tests:
            result, matched = _run_one(policy, test, ctx, rules)
            results.append(result)
            covered.update(matched)
    uncovered = [(rule.id, rule.loc()) for i, rule in enumerate(rules) if i not in covered]
    return PolicyTestReport(results, uncovered)


def _run_one(policy: Policy, test: PolicyTest, ctx: _Context,
             rules: Sequence[Rule]) -> tuple[TestResult, list[int]]:
    try:
        facts, state = _facts_for(test.task, ctx)
    except _BadTest as exc:
        return TestResult(policy.name, test.name, False, str(exc), test.loc("task")), []
    verdict = evaluate(facts, ctx.policies, state, ctx.settings)
    matched = [i for i, rule in enumerate(rules) if rule_matches(rule, facts, verdict.rank)]
    problems = _compare(test.expect, verdict)
    message = "; ".join(problems) if problems else f"rank {verdict.rank.name}, {verdict.decision.value}"
    reasons = tuple(str(r) for r in verdict.reasons)
    return TestResult(policy.name, test.name, not problems, message, test.loc(), reasons), matched


def _rank(value: Any, key: str) -> Rank:
    if not isinstance(value, str) or value not in Rank.__members__:
        raise _BadTest(f"{key} must be one of E D C B A S, not {value!r}")
    return Rank.parse(value)


def _count(task: Mapping[str, Any], key: str, default: int) -> int:
    value = task.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadTest(f"{key} must be a whole number >= 0, not {value!r}")
    return value


def _completed(task: Mapping[str, Any], ctx: _Context) -> int:
    if "completed_missions" in task:
        return _count(task, "completed_missions", 0)
    if "level" not in task:
        return 0
    levels = evolution_settings(ctx.settings.evolution).levels
    found = next((lv for lv in levels if lv.name == task["level"]), None)
    if found is None:
        raise _BadTest(f"unknown level {task['level']!r}")
    return found.min_missions


def _facts_for(task: Mapping[str, Any], ctx: _Context) -> tuple[TaskFacts, GovState]:
    if "mission" not in task:
        raise _BadTest("a test task needs a mission")
    mission_id = str(task["mission"])
    worker = str(task.get("worker") or ("shell" if "run" in task else ""))
    traits = ctx.workers.get(worker)
    if traits is None:
        raise _BadTest(f"unknown worker {worker!r}" if worker else "a test task needs a worker or run")
    mission = ctx.missions.get(mission_id)
    floor = mission.rank if mission else Rank.E
    declared = _rank(task["rank"], "rank") if "rank" in task else None
    text = str(task["run"]) if "run" in task else params_text(task.get("with") or {})
    task_id = str(task.get("task", DEFAULT_TASK))
    facts = TaskFacts(
        mission=mission_id,
        task=task_id,
        category=str(task.get("category") or (mission.category if mission else DEFAULT_CATEGORY)),
        uses=str(task["uses"]) if task.get("uses") else None,
        worker=worker,
        base_rank=max(floor, declared) if declared is not None else floor,
        worker_risk=traits.risk,
        worker_capabilities=traits.capabilities,
        worker_requires_approval=traits.requires_approval,
        text=text,
        has_secrets=bool(task.get("has_secrets", False)),
        matrix_size=_count(task, "matrix_size", 1),
        declared_rank=declared,
    )
    counts = {(mission_id, task_id): _count(task, "failures", 0)}
    return facts, replace(ctx.state, completed_missions=_completed(task, ctx), omen_counts=counts)


def _compare(expect: Mapping[str, Any], verdict: Verdict) -> list[str]:
    problems = []
    if "rank" in expect and str(expect["rank"]) != verdict.rank.name:
        problems.append(f"expected rank {expect['rank']}, got {verdict.rank.name}")
    if "decision" in expect and str(expect["decision"]) != verdict.decision.value:
        problems.append(f"expected decision {expect['decision']}, got {verdict.decision.value}")
    wanted = expect.get("reasons_include") or []
    reasons = [str(r) for r in verdict.reasons]
    for text in [wanted] if isinstance(wanted, str) else wanted:
        if not any(str(text) in reason for reason in reasons):
            problems.append(f"no reason includes {text!r} (reasons: {'; '.join(reasons)})")
    return problems
