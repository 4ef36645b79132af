"""Runes that no mission calls are checked too.

A rune is compiled when a mission calls it; one that nothing calls yet (a new
rune in a pull request, an older version kept beside a newer one) would
otherwise pass ``validate`` with a typo in it and break the first mission that
uses it. Each such rune is compiled through a stand-in call that passes every
input its default or a placeholder of its type, and the problems found in rune
files are reported; the stand-in itself is never shown.
"""

from __future__ import annotations

from collections.abc import Mapping

from nexusmon.compile.compiler import WorkerCatalog, compile_mission
from nexusmon.compile.expand import rune_files
from nexusmon.compile.inputs import placeholder_inputs
from nexusmon.errors import Diagnostic, InvalidFiles
from nexusmon.spec.document import Document
from nexusmon.spec.model import Mission, Rune, Workspace
from nexusmon.spec.parse import parse_mission

STAND_IN = "<call of an uncalled rune>"


def uncalled_rune_problems(
    workspace: Workspace, workers: WorkerCatalog, documents: Mapping[str, Document],
) -> list[Diagnostic]:
    """Problems in the rune files of runes that no mission calls, directly or through runes."""
    called = {path for mission in workspace.missions for path in rune_files(workspace, mission, documents)}
    problems: list[Diagnostic] = []
    for rune in (r for r in workspace.runes if r.doc.path not in called):
        try:
            compile_mission(workspace, _stand_in(rune), {}, workers)
        except InvalidFiles as exc:
            problems += [d for d in exc.diagnostics if d.location.path != STAND_IN]
    return problems


def _stand_in(rune: Rune) -> Mission:
    """A one-task mission calling ``rune`` with every input filled in."""
    data = {
        "mission": "rune-check",
        "objective": f"check rune {rune.ref}",
        "tasks": {"call": {"uses": rune.ref, "with": placeholder_inputs(rune.inputs)}},
    }
    return parse_mission(Document(STAND_IN, data, ""))
