"""Paths a task names (`sources`, `artifacts`, `with.cwd`): relative to the workspace root, never leaving it."""

from __future__ import annotations

from pathlib import PurePosixPath

from nexusmon.errors import Diagnostic
from nexusmon.spec.model import TaskSpec

PATTERN_FIELDS = ("sources", "artifacts")


def pattern_problems(spec: TaskSpec) -> list[Diagnostic]:
    """A located error for every pattern that is empty, absolute or climbs out with ``..``,
    and for a literal ``with.cwd`` that does (a templated one is checked when the task runs)."""
    problems = []
    cwd = spec.with_.get("cwd")
    if isinstance(cwd, str) and "{" not in cwd and cwd.strip():
        problem = _escape(cwd)
        if problem is not None:
            problems.append(Diagnostic(
                spec.loc("with", "cwd"), f"task '{spec.id}': with.cwd {cwd!r} {problem}",
                "paths are relative to the workspace root",
            ))
    for field in PATTERN_FIELDS:
        for index, pattern in enumerate(getattr(spec, field)):
            problem = _escape(pattern)
            if problem is not None:
                problems.append(Diagnostic(
                    spec.loc(field, index), f"task '{spec.id}': {field} pattern {pattern!r} {problem}",
                    "patterns are relative to the workspace root",
                ))
    return problems


def _escape(pattern: str) -> str | None:
    if not pattern.strip():
        return "is empty"
    path = PurePosixPath(pattern)
    if path.is_absolute():
        return "is absolute"
    if ".." in path.parts:
        return "climbs out of the workspace with '..'"
    return None
