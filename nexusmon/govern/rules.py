"""Matching policy rules against task facts.

A rule matches when every key of its ``when`` holds (an empty ``when`` matches
every task):

- ``mission``, ``task``, ``uses``: case-sensitive globs (``fnmatchcase``);
  ``uses`` never matches a task that did not come from a rune call;
- ``category``: equality; ``worker``: one of the listed names;
- ``rank_at_least``: the rank computed so far (see :mod:`.evaluate` for the order);
- ``run_matches``: ``re.search`` over the rendered script or canonical parameters;
- ``has_secrets``: equality.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from re import Pattern
from typing import Any, Protocol

from nexusmon.errors import Diagnostic, InvalidFiles
from nexusmon.govern.facts import TaskFacts
from nexusmon.spec.model import Policy, Rank, Rule
from nexusmon.spec.schema_check import did_you_mean

GLOB_CHARS = frozenset("*?[")


class WorkerCatalog(Protocol):
    """The workers a workspace knows (built-ins and plugins): what the worker registry offers."""

    def get(self, name: str) -> Any: ...

    def names(self) -> Sequence[str]: ...


@functools.lru_cache(maxsize=512)
def _compile(pattern: str) -> Pattern[str]:
    return re.compile(pattern)


def regex_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid regular expression, or None."""
    try:
        _compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


def _search(rule: Rule, pattern: str, text: str) -> bool:
    problem = regex_error(pattern)
    if problem is not None:
        raise InvalidFiles([_regex_diagnostic(rule, pattern, problem)])
    return _compile(pattern).search(text) is not None


def _glob_miss(key: str, pattern: str | None, value: str | None) -> list[str]:
    if pattern is None:
        return []
    if value is not None and fnmatchcase(value, pattern):
        return []
    return [f"{key} {value!r} does not match {pattern!r}"]


def mismatches(rule: Rule, facts: TaskFacts, rank: Rank | None = None) -> list[str]:
    """Every `when` key of ``rule`` that does not hold, as short sentences.

    ``rank`` is the rank computed so far (default: base rank and worker risk).
    """
    when = rule.when
    current = rank if rank is not None else max(facts.base_rank, facts.worker_risk)
    misses = _glob_miss("mission", when.mission, facts.mission)
    misses += _glob_miss("task", when.task, facts.task)
    misses += _glob_miss("uses", when.uses, facts.uses)
    if when.category is not None and facts.category != when.category:
        misses.append(f"category {facts.category!r} is not {when.category!r}")
    if when.worker is not None and facts.worker not in when.worker:
        misses.append(f"worker {facts.worker!r} not in [{', '.join(when.worker)}]")
    if when.rank_at_least is not None and current < when.rank_at_least:
        misses.append(f"rank {current.name} is below {when.rank_at_least.name}")
    if when.run_matches is not None and not _search(rule, when.run_matches, facts.text):
        misses.append(f"run_matches '{when.run_matches}' not found")
    if when.has_secrets is not None and facts.has_secrets != when.has_secrets:
        misses.append(f"has_secrets is {str(facts.has_secrets).lower()}")
    return misses


def rule_matches(rule: Rule, facts: TaskFacts, rank: Rank | None = None) -> bool:
    """True when every `when` key of ``rule`` holds for ``facts`` at ``rank``."""
    return not mismatches(rule, facts, rank)


def all_rules(policies: Iterable[Policy]) -> tuple[Rule, ...]:
    """Every file's rules, in policy then file order."""
    return tuple(rule for policy in policies for rule in policy.rules)


def matching_rules(rules: Iterable[Rule], facts: TaskFacts, rank: Rank) -> tuple[Rule, ...]:
    return tuple(rule for rule in rules if rule_matches(rule, facts, rank))


def _regex_diagnostic(rule: Rule, pattern: str, problem: str) -> Diagnostic:
    return Diagnostic(
        rule.loc("when", "run_matches"),
        f"rule '{rule.id}': invalid regular expression '{pattern}': {problem}",
    )


def check_rule_patterns(policies: Iterable[Policy]) -> list[Diagnostic]:
    """A located error for every `run_matches` that is not a valid regular expression."""
    found = []
    for rule in all_rules(policies):
        pattern = rule.when.run_matches
        problem = None if pattern is None else regex_error(pattern)
        if pattern is not None and problem is not None:
            found.append(_regex_diagnostic(rule, pattern, problem))
    return found


def check_rule_workers(policies: Iterable[Policy], workers: WorkerCatalog) -> list[Diagnostic]:
    """A located error for every `when.worker` name that no known worker has.

    Such a rule never matches, so a misspelt `deny` would silently stop guarding.
    """
    found = []
    for rule in all_rules(policies):
        for i, name in enumerate(rule.when.worker or ()):
            if workers.get(name) is None:
                found.append(Diagnostic(rule.loc("when", "worker", i),
                                        f"rule '{rule.id}': unknown worker '{name}'",
                                        _worker_hint(name, workers)))
    return found


def check_test_workers(policies: Iterable[Policy], workers: WorkerCatalog) -> list[Diagnostic]:
    """A located error for every policy test task whose worker no known worker has (or that
    names neither a worker nor a `run`): `policy test` could only fail it."""
    found = []
    for policy in policies:
        for test in policy.tests:
            name = test.task.get("worker") or ("shell" if "run" in test.task else None)
            if name is None:
                found.append(Diagnostic(test.loc("task"),
                                        f"policy test '{test.name}': the task needs a worker or a run"))
            elif workers.get(str(name)) is None:
                found.append(Diagnostic(test.loc("task", "worker"),
                                        f"policy test '{test.name}': unknown worker '{name}'",
                                        _worker_hint(str(name), workers)))
    return found


def _worker_hint(name: str, workers: WorkerCatalog) -> str:
    if GLOB_CHARS & set(name):
        return "`when.worker` takes exact worker names, not globs"
    return did_you_mean(name, workers.names()) or f"known workers: {', '.join(workers.names())}"
