"""Paths a task names (`sources`, `artifacts`, `with.cwd`, a template's `with.path`): relative to the workspace root, never leaving it."""

from __future__ import annotations

import posixpath

from nexusmon.errors import Diagnostic
from nexusmon.spec.model import TaskSpec

PATTERN_FIELDS = ("sources", "artifacts")
NUL_PROBLEM = "contains a NUL byte"


def pattern_problems(spec: TaskSpec) -> list[Diagnostic]:
    """A located error for every pattern that is empty, absolute, climbs out with ``..``,
    holds a NUL byte or a template, and for a literal ``with.cwd`` that escapes (a templated one is checked
    when the task runs)."""
    named: list[tuple[tuple[str | int, ...], str, str]] = [
        ((field, index), f"{field} pattern", pattern)
        for field in PATTERN_FIELDS for index, pattern in enumerate(getattr(spec, field))
    ]
    cwd = spec.with_.get("cwd")
    if isinstance(cwd, str) and "{" not in cwd and cwd.strip():
        named.append((("with", "cwd"), "with.cwd", cwd))
    # A template's path is relative to its working directory: checked here when that is the root.
    target = spec.with_.get("path") if spec.worker_name == "template" and "cwd" not in spec.with_ else None
    if isinstance(target, str) and "{" not in target and target.strip():
        named.append((("with", "path"), "with.path", target))
    problems = []
    for at, label, path in named:
        problem = _escape(path)
        if problem is None and label == "with.path" and (path.endswith("/") or posixpath.normpath(path) == "."):
            problem = "names a directory; the template worker writes a file"
        if problem is not None:
            noun = "paths" if label.startswith("with.") else "patterns"
            hint = None if problem == NUL_PROBLEM else f"{noun} are relative to the workspace root"
            problems.append(Diagnostic(spec.loc(*at), f"task '{spec.id}': {label} {path!r} {problem}", hint))
        elif label != "with.cwd" and ("{{" in path or "{%" in path):
            problems.append(Diagnostic(
                spec.loc(*at), f"task '{spec.id}': {label} {path!r} is a template, but patterns are not rendered",
                "match the files with a glob instead, such as 'dist/*.txt'"))
    return problems


def _escape(path: str) -> str | None:
    if not path.strip():
        return "is empty"
    if "\x00" in path:
        return NUL_PROBLEM
    if path.startswith("/"):
        return "is absolute"
    if ".." in path.split("/"):  # as PurePosixPath(path).parts, at a fraction of the cost
        return "climbs out of the workspace with '..'"
    return None
