"""Run-time template contexts: real task results, real secrets, the real run id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from nexusmon.compile.context import TaskView, identity
from nexusmon.compile.plan import Plan, PlannedTask
from nexusmon.compile.templates import TemplateFailure, analyse, render
from nexusmon.compile.units import CallExport, Scope
from nexusmon.spec.model import TaskStatus


class TaskOutcome(Struct):
    """What a finished task left for its dependents."""

    status: TaskStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)


class RunContext(Struct, frozen=True):
    """Everything constant over one run that templates may read."""

    plan: Plan
    run_id: str
    root: Path
    secrets: Mapping[str, str]
    env: Mapping[str, str]  # the mission env rendered with real values

    def base(self, scope: Scope, matrix: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "inputs": dict(scope.inputs),
            "env": dict(self.env),
            "secrets": dict(self.secrets),
            "matrix": dict(matrix),
            **identity(self.plan.mission, self.run_id, self.root),
        }


def task_context(
    run: RunContext, task: PlannedTask, outcomes: Mapping[str, TaskOutcome],
) -> dict[str, Any]:
    context = run.base(task.scope, task.matrix)
    context["tasks"] = _views(run, task.scope, task.reads.tasks, outcomes)
    return context


def _views(
    run: RunContext, scope: Scope, names: Iterable[str], outcomes: Mapping[str, TaskOutcome],
) -> dict[str, TaskView]:
    views: dict[str, TaskView] = {}
    for name in names:
        call = scope.calls.get(name)
        if call is not None:
            views[name] = _call_view(run, call, outcomes)
            continue
        outcome = outcomes.get(scope.prefix + name)
        if outcome is not None:
            views[name] = TaskView(outcome.outputs, outcome.status.value, outcome.artifacts)
    return views


def _call_view(run: RunContext, call: CallExport, outcomes: Mapping[str, TaskOutcome]) -> TaskView:
    """A rune call seen from outside: its declared outputs, rendered in the rune's scope."""
    inner = call.scope
    context = run.base(inner, {})
    from_templates = {o for text in call.rune.outputs.values() for o in _task_names(text)}
    context["tasks"] = _views(run, inner, from_templates, outcomes)
    outputs = {key: _call_output(call, key, text, context) for key, text in call.rune.outputs.items()}
    statuses = [outcomes[g].status for g in call.leaves if g in outcomes]
    status = _worst(statuses)
    artifacts = [a for g in call.leaves if g in outcomes for a in outcomes[g].artifacts]
    return TaskView(outputs, status, artifacts)


def _call_output(call: CallExport, key: str, text: str, context: Mapping[str, Any]) -> str:
    """One declared output of a rune call; a failure names the rune's line that declares it."""
    try:
        return render(text, context)
    except TemplateFailure as exc:
        raise TemplateFailure(f"{call.rune.loc('outputs', key)}: output '{key}' of rune "
                              f"{call.rune.ref}: {exc.message}") from None


def _task_names(text: str) -> Iterable[str]:
    try:
        return analyse(text).tasks
    except TemplateFailure:
        return ()


def _worst(statuses: Iterable[TaskStatus]) -> str:
    order = [TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.BLOCKED,
             TaskStatus.AWAITING_APPROVAL, TaskStatus.SKIPPED, TaskStatus.CACHED, TaskStatus.SUCCEEDED]
    found = set(statuses)
    for status in order:
        if status in found:
            return status.value
    return TaskStatus.SUCCEEDED.value


def mission_env(plan: Plan, run_id: str, root: Path, secrets: Mapping[str, str]) -> dict[str, str]:
    context = {
        "inputs": dict(plan.inputs), "env": {}, "secrets": dict(secrets), "tasks": {}, "matrix": {},
        **identity(plan.mission, run_id, root),
    }
    return {k: render(v, context) for k, v in plan.mission.env.items()}


