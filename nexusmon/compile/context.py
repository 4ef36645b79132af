"""Template contexts: the probe used at compile time and the real one used at run time.

At compile time nothing has run yet, so task results and secrets are stand-ins
that render as ``<tasks.build.outputs.stdout>`` / ``<secrets.TOKEN>``: the
rendered text is then the *display form* that plans show, policies match and
plan digests hash (secrets by name, never by value).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from nexusmon.compile.templates import Deferred
from nexusmon.compile.units import Scope
from nexusmon.spec.model import Mission


class Placeholder(str):
    """A run-time value seen at compile time: renders as ``<tasks.a.outputs.key>``;
    reading deeper (``.sub`` or ``['sub']``) gives a deeper placeholder."""

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("_"):
            raise AttributeError(name)
        return Placeholder(f"{self[:-1]}.{name}>")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return Placeholder(f"{self[:-1]}.{key}>")
        return str.__getitem__(self, key)


class _OutputsProbe(dict[str, str], Deferred):
    """Any key reads as a placeholder: outputs of a task are unknown before it runs.
    The whole mapping renders as ``<tasks.a.outputs>`` (at run time: JSON)."""

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.owner = owner
        self.display = f"<tasks.{owner}.outputs>"

    def __missing__(self, key: str) -> str:
        return Placeholder(f"<tasks.{self.owner}.outputs.{key}>")


class _ArtifactsProbe(list[Any], Deferred):
    """A task's artifacts before it runs: renders as ``<tasks.a.artifacts>`` (at run time: JSON)."""

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.display = f"<tasks.{owner}.artifacts>"


class TaskView(Struct, frozen=True):
    """What ``tasks.<id>`` shows a template."""

    outputs: Mapping[str, Any]
    status: str
    artifacts: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        """``{{ tasks.a }}`` as a whole: JSON of the three fields."""
        view = {"outputs": dict(self.outputs), "status": self.status, "artifacts": list(self.artifacts)}
        return json.dumps(view, ensure_ascii=False, default=str)


class _TaskProbe(TaskView, Deferred, frozen=True):
    """``tasks.<id>`` before the task runs: renders as ``<tasks.a>``."""

    @property
    def display(self) -> str:  # type: ignore[override]
        return self.status.removesuffix(".status>") + ">"

    def __str__(self) -> str:
        return self.display


def probe_view(name: str, declared_outputs: Mapping[str, Any] | None = None) -> TaskView:
    if declared_outputs is not None:
        outputs: Mapping[str, Any] = {k: f"<tasks.{name}.outputs.{k}>" for k in declared_outputs}
    else:
        outputs = _OutputsProbe(name)
    return _TaskProbe(outputs, Placeholder(f"<tasks.{name}.status>"), _ArtifactsProbe(name))


def probe_tasks(scope: Scope, names: Iterable[str]) -> dict[str, TaskView]:
    """Stand-in views for the task names a template reads (only those: plans can be large)."""
    views: dict[str, TaskView] = {}
    for name in names:
        if name in scope.names:
            call = scope.calls.get(name)
            views[name] = probe_view(name, call.rune.outputs if call else None)
        elif any(scope.prefix + name in gids for gids in scope.names.values()):
            views[name] = probe_view(name)  # one expansion of a matrix: tasks['build[linux]']
        elif name.split(".", 1)[0] in scope.calls:
            views[name] = probe_view(name)  # a rune call's own task: tasks['docs.render']
    return views


def identity(mission: Mission, run_id: str, root: Path) -> dict[str, Any]:
    return {
        "mission": {"id": mission.id, "category": mission.category, "objective": mission.objective},
        "run": {"id": run_id},
        "workspace": str(root),
    }


def probe_context(
    mission: Mission, scope: Scope, matrix: Mapping[str, Any], root: Path,
    env: Mapping[str, str] | None = None, reads: Iterable[str] = (),
) -> dict[str, Any]:
    """Context for compile-time rendering of a task in ``scope`` that reads tasks ``reads``."""
    return {
        "inputs": dict(scope.inputs),
        "env": dict(env or {}),
        "secrets": {name: f"<secrets.{name}>" for name in mission.secrets},
        "tasks": probe_tasks(scope, reads),
        "matrix": dict(matrix),
        **identity(mission, "<run.id>", root),
    }
