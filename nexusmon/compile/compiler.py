"""files -> Plan: expand runes and matrices, order the DAG, render templates, check names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nexusmon.compile.context import probe_context
from nexusmon.compile.expand import MAX_TASKS, Expander
from nexusmon.compile.graph import find_cycle, is_upstream, stable_order
from nexusmon.compile.params import params_complaint
from nexusmon.compile.paths import pattern_problems
from nexusmon.compile.plan import Plan, PlannedTask
from nexusmon.compile.render import (
    NUL,
    FieldError,
    Reads,
    condition,
    reads_of,
    render_fields,
    templates_of,
)
from nexusmon.compile.templates import TemplateFailure, analyse, render
from nexusmon.compile.units import CallExport, Scope, Unit
from nexusmon.errors import Diagnostic, InvalidFiles, Location
from nexusmon.spec.model import Mission, Rank, TaskSpec, Workspace
from nexusmon.spec.schema_check import did_you_mean


class WorkerCatalog(Protocol):
    def get(self, name: str) -> Any: ...

    def names(self) -> Sequence[str]: ...


def compile_mission(
    workspace: Workspace, mission: Mission, inputs: dict[str, Any], workers: WorkerCatalog,
) -> Plan:
    """Compile ``mission`` with typed ``inputs``; raise :class:`InvalidFiles` with every problem."""
    problems: list[Diagnostic] = []
    env = _mission_env(workspace, mission, inputs, problems)
    expander = Expander(workspace, mission, inputs)
    units = expander.units()
    if expander.total > expander.limit:  # what was left unbuilt would only add noise
        if expander.oversized:
            raise InvalidFiles(expander.oversized)
        if mission.constraints.max_steps is not None:
            raise InvalidFiles([Diagnostic(
                mission.loc("constraints", "max_steps"),
                f"mission expands to {expander.total} tasks, more than max_steps {expander.limit}")])
        raise InvalidFiles([Diagnostic(
            mission.loc("tasks"), f"mission expands to {expander.total} tasks, more than {MAX_TASKS}",
            "set constraints.max_steps to allow more")])
    problems.extend(expander.diagnostics)
    problems.extend(_outputs_problems(workspace, mission, expander.calls, env))
    by_id = {u.id: u for u in units}
    graph = {u.id: [n for n in u.needs if n in by_id] for u in units}
    cycle = find_cycle(graph)
    if cycle is not None:
        where = _cycle_location(cycle, by_id, expander.call_edges)
        problems.append(Diagnostic(where, "dependency cycle: " + " -> ".join(cycle)))
        raise InvalidFiles(problems)
    order = stable_order(graph, {u.id: u.order for u in units})
    tasks = []
    reads_cache: dict[int, tuple[Reads, list[Diagnostic]]] = {}
    for gid in order:
        planned = _plan_task(workspace, mission, by_id[gid], graph, env, workers, reads_cache, problems)
        if planned is not None:
            tasks.append(planned)
    if problems:
        raise InvalidFiles(problems)
    return Plan(mission, workspace.root, inputs, env, tuple(tasks))


def _cycle_location(
    cycle: Sequence[str], by_id: Mapping[str, Unit], call_edges: Mapping[tuple[str, str], Location],
) -> Location:
    """Where to name a cycle: a rune call's `needs` that wrote one of its edges, else a
    `needs` of the mission's own tasks, else the first task's `needs`."""
    for edge in zip(cycle, cycle[1:]):
        if edge in call_edges:
            return call_edges[edge]
    own = [gid for gid in cycle if by_id[gid].uses is None]
    return by_id[own[0] if own else cycle[0]].spec.loc("needs")


def _mission_env(
    workspace: Workspace, mission: Mission, inputs: dict[str, Any], problems: list[Diagnostic],
) -> dict[str, str]:
    from_scope = probe_context(mission, _root_scope(inputs), {}, workspace.root)
    env: dict[str, str] = {}
    for key, text in mission.env.items():
        try:
            if analyse(text).tasks:
                raise TemplateFailure("the mission's env cannot read task results")
            env[key] = render(text, from_scope)
            if NUL in env[key]:
                raise TemplateFailure(f"the mission's env.{key} contains a NUL byte")
        except TemplateFailure as exc:
            problems.append(Diagnostic(mission.loc("env", key), exc.message))
            env[key] = f"<env.{key}>"  # so that tasks reading it do not add "undefined name"
    return env


def _root_scope(inputs: dict[str, Any]) -> Scope:
    return Scope("", inputs, None)


def _plan_task(
    workspace: Workspace, mission: Mission, unit: Unit, graph: Mapping[str, Sequence[str]],
    env: Mapping[str, str], workers: WorkerCatalog,
    reads_cache: dict[int, tuple[Reads, list[Diagnostic]]], problems: list[Diagnostic],
) -> PlannedTask | None:
    spec = unit.spec
    worker_name = spec.worker_name
    worker = workers.get(worker_name)
    if worker is None:
        problems.append(Diagnostic(
            spec.loc("worker"), f"unknown worker '{worker_name}' in task '{spec.id}'",
            did_you_mean(worker_name, workers.names()),
        ))
        return None
    key = id(spec)
    if key not in reads_cache:
        reads_cache[key] = reads_of(spec)
        problems.extend(reads_cache[key][1])
        problems.extend(pattern_problems(spec))  # once per spec, however often a rune is called
    reads = reads_cache[key][0]
    if reads_cache[key][1]:
        return None
    references = _reference_problems(unit, reads, graph)
    if references:
        problems.extend(references)
        return None  # rendering would only repeat them as undefined names
    context = probe_context(mission, unit.scope, unit.matrix, workspace.root, env, reads.tasks)
    try:
        fields = render_fields(spec, context)
        static_if = None if reads.runtime else condition(spec, context)
        if spec.if_ is not None and reads.runtime:
            condition(spec, context)  # still catches undefined names
    except FieldError as exc:
        problems.extend(exc.diagnostics)
        return None
    if not reads.runtime:
        problems.extend(_params_problems(spec, worker, fields.params))
    floors = [r for r in (mission.rank, spec.rank, unit.rank_floor) if r is not None]
    return PlannedTask(
        unit=unit, worker=worker_name, base_rank=max(floors, default=Rank.E),
        params=fields.params, env=fields.env, reads=reads,
        cache=spec.cache if spec.cache is not None else bool(spec.sources),
        condition=static_if, matrix_size=_matrix_size(spec),
    )


def _outputs_problems(
    workspace: Workspace, mission: Mission, calls: Sequence[CallExport], env: Mapping[str, str],
) -> list[Diagnostic]:
    """A rune's `outputs` are templates too: checked in the scope of each call, like its tasks."""
    problems: dict[str, Diagnostic] = {}
    for call in calls:
        for key, text in call.rune.outputs.items():
            where = call.rune.loc("outputs", key)
            try:
                tasks = analyse(text).tasks
                unknown = [Diagnostic(where, f"output '{key}' of rune {call.rune.ref} reads tasks.{name}, "
                                      f"but there is no task '{name}'", did_you_mean(name, list(call.scope.names)))
                           for name in sorted(tasks) if not _in_scope(call.scope, name)]
                if not unknown:
                    render(text, probe_context(mission, call.scope, {}, workspace.root, env, tasks))
            except TemplateFailure as exc:
                unknown = [Diagnostic(where, exc.message)]
            problems.update((str(d), d) for d in unknown)
    return list(problems.values())


def _in_scope(scope: Scope, name: str) -> bool:
    """``tasks.<name>`` names a task of the scope, or one expansion of a matrix task."""
    return name in scope.names or any(scope.prefix + name in gids for gids in scope.names.values())


def _matrix_size(spec: TaskSpec) -> int:
    size = 1
    for _, values in spec.matrix:
        size *= len(values)
    return size


def _reference_problems(unit: Unit, reads: Reads, graph: Mapping[str, Sequence[str]]) -> list[Diagnostic]:
    """`tasks.X` must name a task this one waits for, directly or transitively."""
    scope, spec = unit.scope, unit.spec
    problems = []
    for name in sorted(reads.tasks):
        if scope.names.get(name) == ():
            continue  # a declared task that expanded to nothing has reported why
        targets = scope.names.get(name) or ((scope.prefix + name,) if scope.prefix + name in graph else ())
        where = spec.loc(*_field_reading(spec, name))
        if not targets:
            problems.append(Diagnostic(
                where, f"task '{spec.id}' reads tasks.{name}, but there is no task '{name}'",
                did_you_mean(name, [*scope.names, *(scope.local(g) for g in graph if g.startswith(scope.prefix))]),
            ))
            continue
        if name in scope.names and name not in scope.calls and targets != (scope.prefix + name,):
            problems.append(Diagnostic(
                where, f"task '{spec.id}' reads tasks.{name}, but '{name}' has a matrix: there is "
                f"no one task '{name}' to read", f"read one of its tasks, e.g. tasks['{scope.local(targets[0])}']",
            ))
            continue
        if not all(is_upstream(graph, unit.id, t) for t in targets):
            problems.append(Diagnostic(
                where, f"task '{spec.id}' reads tasks.{name} but does not need '{name}'",
                f"add '{name}' to needs",
            ))
    return problems


def _field_reading(spec: TaskSpec, name: str) -> tuple[Any, ...]:
    for at, text, expression in templates_of(spec):
        try:
            if name in analyse(text, expression).tasks:
                return at
        except TemplateFailure:
            continue
    return ()


def _params_problems(spec: TaskSpec, worker: Any, params: Mapping[str, Any]) -> list[Diagnostic]:
    if spec.run is not None and "run" in spec.with_:
        return [Diagnostic(spec.loc("with", "run"), f"task '{spec.id}' gives its script twice, as run and as with.run")]
    complaint = params_complaint(worker, params)
    if complaint is None:
        return []
    return [Diagnostic(spec.loc("with", *complaint.at),
                       f"worker '{spec.worker_name}' in task '{spec.id}': {complaint.message}")]
