"""Child missions: the missions that `mission` tasks run, checked across the workspace.

A task ``{worker: mission, with: {mission: deploy}}`` names its child literally;
``validate`` checks that the child exists and that no chain of such tasks leads
back to a mission already on it (``ping -> pong -> ping`` would otherwise be
caught only when the run gets there). A child named by a template
(``"{{ inputs.target }}"``) is known only at run time, where the worker checks
the same things.
"""

from __future__ import annotations

import graphlib
import posixpath
from collections.abc import Iterable, Mapping

from msgspec import Struct

from nexusmon.compile.plan import Plan
from nexusmon.errors import Diagnostic, Location
from nexusmon.spec.model import Mission
from nexusmon.spec.schema_check import did_you_mean


class ChildCall(Struct, frozen=True):
    """One task that runs a child mission named literally."""

    parent: str  # mission id
    task: str
    child: str  # the `mission` value as written (an id or a path)
    where: Location


def child_calls(plan: Plan) -> list[ChildCall]:
    """The ``mission`` tasks of ``plan`` whose child is written literally, not templated."""
    calls = []
    for task in plan.tasks:
        child = task.spec.with_.get("mission") if task.worker == "mission" else None
        if isinstance(child, str) and "{{" not in child and "{%" not in child:
            calls.append(ChildCall(plan.mission.id, task.id, child, task.spec.loc("with", "mission")))
    return calls


def child_mission_problems(plans: Iterable[Plan], missions: Iterable[Mission]) -> list[Diagnostic]:
    """Unknown child missions, and the first cycle of missions running each other."""
    by_ref = _mission_refs(missions)
    edges: dict[str, dict[str, ChildCall]] = {}
    problems = []
    for plan in plans:
        edges.setdefault(plan.mission.id, {})
        for call in child_calls(plan):
            child = by_ref.get(call.child) or by_ref.get(posixpath.normpath(call.child))
            if child is None:
                hint = did_you_mean(call.child, [ref for ref in by_ref if "/" not in ref])
                problems.append(Diagnostic(call.where, f"task '{call.task}' runs unknown mission "
                                                       f"'{call.child}'", hint))
            else:
                edges[call.parent].setdefault(child, call)
    cycle = _cycle({parent: set(children) for parent, children in edges.items()})
    if cycle:
        first = edges[cycle[0]][cycle[1]]
        problems.append(Diagnostic(first.where, "mission cycle: " + " -> ".join(cycle)
                                   + f" (task '{first.task}' runs mission '{first.child}')"))
    return problems


def _mission_refs(missions: Iterable[Mission]) -> dict[str, str]:
    """Every way a task may name a mission (its id, its file path) -> the mission id."""
    refs: dict[str, str] = {}
    for mission in missions:
        refs[mission.id] = mission.id
        refs.setdefault(mission.path, mission.id)
    return refs


def _cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """``[a, b, a]`` when ``graph`` (mission -> the missions it runs) has a cycle."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        nodes: list[str] = exc.args[1]
        # graphlib lists a cycle following predecessors: reversed, it reads as "runs". It
        # starts at the first mission by id, whichever order the files were read in.
        ring = nodes[::-1][:-1]
        start = ring.index(min(ring))
        ring = ring[start:] + ring[:start]
        return [*ring, ring[0]]
    return None
