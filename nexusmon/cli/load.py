"""Shared command plumbing that needs the workspace: project, mission and inputs options."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from nexusmon.cli.common import Globals
from nexusmon.compile.inputs import read_inputs_files, split_assignments
from nexusmon.compile.plan import Plan
from nexusmon.engine.project import Project, compile_plan, find_mission, open_project
from nexusmon.errors import InvalidFiles, UsageError
from nexusmon.spec.workspace import SETTINGS_FILE, find_root, state_dir_for
from nexusmon.store.ledger import LEDGER_FILE, Ledger
from nexusmon.store.records import RunRow

F = TypeVar("F", bound=Callable[..., Any])


def project_of(ctx: click.Context, root: Path | None = None) -> Project:
    """The workspace found from `-C DIR` (or the current directory), or at ``root``."""
    globals_: Globals = ctx.find_root().obj
    return open_project(root or find_root(globals_.start), given_state_dir(ctx))


def given_state_dir(ctx: click.Context) -> Path | None:
    """`--state-dir` / NEXUSMON_STATE_DIR, when given."""
    globals_: Globals = ctx.find_root().obj
    return Path(globals_.state_dir) if globals_.state_dir else None


def state_dir_of(ctx: click.Context, project: Project) -> Path:
    """`--state-dir` / NEXUSMON_STATE_DIR, else nexusmon.yaml's state_dir, else `.nexusmon/`.

    An invalid nexusmon.yaml is an error here too: guessing `.nexusmon/` would show
    another state directory's runs (or none) as if they were the workspace's.
    """
    given = given_state_dir(ctx)
    broken = [d for d in project.loaded.diagnostics if d.location.path == SETTINGS_FILE]
    if broken and given is None:
        raise InvalidFiles(broken)
    return state_dir_for(project.root, project.workspace.settings, given)


def inputs_options(fn: F) -> F:
    fn = click.option("--inputs-file", "inputs_files", type=click.Path(dir_okay=False), multiple=True,
                      help="YAML mapping of input values (repeatable: later files win per input).")(fn)
    fn = click.option("-i", "--input", "assignments", multiple=True, metavar="NAME=VALUE",
                      help="Set a mission input (repeatable); read as a YAML scalar.")(fn)
    return fn


def plan_for(
    ctx: click.Context, project: Project, mission_ref: str,
    assignments: Sequence[str], inputs_files: Sequence[str],
) -> Plan:
    mission = find_mission(project, mission_ref)
    from_file, origins = read_inputs_files(inputs_files)
    return compile_plan(project, mission, split_assignments(assignments), from_file, origins)


def replan(project: Project, run: RunRow, inputs: Mapping[str, Any]) -> Plan:
    """A run's mission compiled again from today's files, with the run's inputs."""
    mission = project.workspace.mission(run.mission)
    if mission is not None:
        return compile_plan(project, mission, {}, inputs)
    broken = [d for d in project.loaded.diagnostics if d.location.path == run.mission_file]
    if broken:  # the file is there but does not load (a YAML error after an edit): say where
        raise InvalidFiles(broken)
    raise UsageError(f"mission '{run.mission}' of this run no longer exists in the workspace")


@contextlib.contextmanager
def existing_ledger(state_dir: Path) -> Iterator[Ledger | None]:
    """The ledger of ``state_dir``, or None when nothing has run yet (nothing is created)."""
    if not (state_dir / LEDGER_FILE).is_file():
        yield None
        return
    with Ledger(state_dir) as ledger:
        yield ledger


def when(ts: float | None) -> str:
    """A Unix time as local `YYYY-MM-DD HH:MM:SS`, or `-`."""
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
