"""The loaded workspace with its workers: what every command starts from."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from nexusmon.compile.children import child_mission_problems
from nexusmon.compile.compiler import compile_mission
from nexusmon.compile.inputs import placeholder_inputs, resolve_inputs
from nexusmon.compile.plan import Plan
from nexusmon.compile.runecheck import uncalled_rune_problems
from nexusmon.errors import Diagnostic, InvalidFiles, Location, UsageError
from nexusmon.govern.gates import check_policies
from nexusmon.spec.document import Document
from nexusmon.spec.model import Mission, Workspace
from nexusmon.spec.schema_check import did_you_mean
from nexusmon.spec.workspace import Loaded, load_workspace, shown_path
from nexusmon.util.masking import Masker
from nexusmon.workers.registry import Registry, load_registry


class Project(Struct, frozen=True):
    """A loaded workspace with its worker registry: what every command starts from."""

    root: Path
    loaded: Loaded
    registry: Registry

    @property
    def workspace(self) -> Workspace:
        return self.loaded.workspace

    def plugin_diagnostics(self, installed: bool = True) -> list[Diagnostic]:
        """Plugins that failed to load; ``installed=False`` leaves entry points unread."""
        problems = self.registry.problems if installed else self.registry.local_problems()
        return [Diagnostic(Location(p.path, p.line, p.col), p.message, p.hint) for p in problems]

    def shared_diagnostics(self, installed: bool = True) -> list[Diagnostic]:
        """Problems that affect every mission: runes, policies, settings, plugins.

        With ``installed=False``, a broken installed plugin is reported only when a task
        needs a worker that is neither built in nor in ``plugins/`` (run and plan).
        """
        own = [d for d in self.loaded.diagnostics if not d.location.path.startswith("missions/")]
        return own + check_policies(self.workspace.policies, self.registry) + self.plugin_diagnostics(installed)


def open_project(root: Path, state_dir: Path | None = None) -> Project:
    """The workspace at ``root``; ``state_dir`` is the one given on the command line, if any."""
    loaded = load_workspace(root, state_dir)
    return Project(root, loaded, load_registry(root))


def find_mission(project: Project, ref: str, cwd: Path | None = None) -> Mission:
    """A mission by id or by file path; unknown names are usage errors."""
    mission = project.workspace.mission(ref)
    if mission is not None:
        return mission
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        shown = _shown(project.root, ref, cwd or Path.cwd())
        for m in project.workspace.missions:
            if m.path == shown:
                return m
        broken = [d for d in project.loaded.diagnostics if d.location.path == shown]
        if broken:
            raise InvalidFiles(broken)
        candidate = Path(ref) if Path(ref).is_absolute() else (cwd or Path.cwd()) / ref
        if candidate.is_file():
            raise UsageError(f"{ref} is not a mission of this workspace: missions are the "
                             "missions/*.yaml files of the workspace root (move it there, or run it by id)")
        raise UsageError(f"no mission file {ref}")
    broken = _broken_mission_files(project, ref)
    if broken:
        raise InvalidFiles(broken)
    hint = did_you_mean(ref, [m.id for m in project.workspace.missions])
    raise UsageError(f"unknown mission '{ref}'" + (f" ({hint})" if hint else ""))


def _shown(root: Path, ref: str, cwd: Path) -> str:
    for base in (cwd, root):
        candidate = (base / ref)
        if candidate.exists():
            return shown_path(root, candidate)
    return ref


_MISSION_LINE = re.compile(r"""^mission:[ \t]*(['"]?)([a-z0-9][a-z0-9-]*)\1[ \t]*(?:#.*)?\r?$""", re.MULTILINE)


def _broken_mission_files(project: Project, ref: str) -> list[Diagnostic]:
    """Diagnostics of mission files that failed to load and may define ``ref``."""
    found = [d for d in project.loaded.diagnostics
             if d.location.path in (f"missions/{ref}.yaml", f"missions/{ref}.yml")]
    for path, doc in project.loaded.documents.items():
        if path.startswith("missions/") and isinstance(doc.data, dict) and doc.data.get("mission") == ref:
            found += [d for d in project.loaded.diagnostics if d.location.path == path]
    unread = {d.location.path for d in project.loaded.diagnostics
              if d.location.path.startswith("missions/") and d.location.path not in project.loaded.documents}
    for path in sorted(unread):  # not even YAML (a syntax error, a duplicate key): look for its id line
        if _declares(project.root / path, ref):
            found += [d for d in project.loaded.diagnostics if d.location.path == path]
    return found


def _declares(path: Path, ref: str) -> bool:
    """Whether the file has a top-level ``mission: <ref>`` line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(match.group(2) == ref for match in _MISSION_LINE.finditer(text))


def compile_plan(
    project: Project, mission: Mission, cli: Mapping[str, str], from_file: Mapping[str, Any],
    origins: Mapping[str, Document] | None = None,
) -> Plan:
    """Inputs checked, shared files valid, mission compiled: or a usage/invalid-files error.

    ``origins`` names the inputs file each value of ``from_file`` came from, to locate its errors.
    """
    own = [d for d in project.loaded.diagnostics if d.location.path == mission.path]
    problems = own + project.shared_diagnostics(installed=False)
    if problems:
        raise InvalidFiles(problems)
    try:
        inputs = resolve_inputs(mission.inputs, cli, from_file, f"mission '{mission.id}'", origins)
    except UsageError as exc:  # "expects integer, got 'hunter2'": the value may be a secret's
        raise UsageError(_secrets_masker(mission).mask(str(exc))) from None
    except InvalidFiles as exc:
        masker = _secrets_masker(mission)
        raise InvalidFiles(replace(d, message=masker.mask(d.message)) for d in exc.diagnostics) from None
    try:
        return compile_mission(project.workspace, mission, inputs, project.registry)
    except InvalidFiles as exc:  # an unknown worker may be an installed plugin that broke
        raise InvalidFiles([*exc.diagnostics, *project.plugin_diagnostics()]) from None


def _secrets_masker(mission: Mission) -> Masker:
    return Masker(os.environ.get(name, "") for name in mission.secrets)


def validate(project: Project, only: Sequence[str] = ()) -> list[Diagnostic]:
    """Every problem in the workspace (or only in the files named by ``only``)."""
    problems: list[Diagnostic] = list(project.loaded.diagnostics) + project.shared_diagnostics()
    plans = []
    for mission in project.workspace.missions:
        try:
            inputs = placeholder_inputs(mission.inputs)
            plans.append(compile_mission(project.workspace, mission, inputs, project.registry))
        except InvalidFiles as exc:
            problems.extend(exc.diagnostics)
    problems += child_mission_problems(plans, project.workspace.missions)
    problems += uncalled_rune_problems(project.workspace, project.registry, project.loaded.documents)
    unique: dict[str, Diagnostic] = {}
    for d in problems:
        unique.setdefault(str(d), d)
    result = list(unique.values())
    if only:
        result = [d for d in result if any(_within(d.location.path, p) for p in only)]
    return sorted(result, key=lambda d: (d.location.path, d.location.line, d.location.col))


def _within(path: str, selector: str) -> bool:
    selector = selector.rstrip("/")
    return path == selector or path.startswith(selector + "/") or selector in ("", ".")
