"""`nexusmon status` (evolution level, XP, capabilities) and `nexusmon omens` (failure counters).

Both only read state: without a ledger they report an empty one and create nothing.
Both read policies, so invalid policy files stop them as they stop `plan` (exit 2).
"""

from __future__ import annotations

from typing import Any

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, echo_json
from nexusmon.cli.load import existing_ledger, project_of, state_dir_of, when
from nexusmon.engine.history import gov_state
from nexusmon.engine.project import Project
from nexusmon.errors import InvalidFiles
from nexusmon.govern.evolution import (
    XP_PER_MISSION,
    Level,
    Progress,
    capabilities_at,
    evolution_settings,
    progress,
)
from nexusmon.govern.gates import PolicySettings, check_policies, effective_settings
from nexusmon.govern.omens import omen_level
from nexusmon.spec.model import OmenThresholds
from nexusmon.spec.workspace import FOLDERS
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import OmenRow

BAR_WIDTH = 20


def policy_settings(project: Project) -> PolicySettings:
    """The merged policy settings; :class:`InvalidFiles` when `validate` would reject a policy."""
    folder = FOLDERS["policy"] + "/"
    problems = [d for d in project.loaded.diagnostics if d.location.path.startswith(folder)]
    problems += check_policies(project.workspace.policies, project.registry)
    if problems:
        raise InvalidFiles(problems)
    return effective_settings(project.workspace.policies)


def _levels(project: Project) -> tuple[Level, ...]:
    return evolution_settings(policy_settings(project).evolution).levels


# ------------------------------------------------------------------ status


@click.command()
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> int:
    """Show the evolution level, XP, progress to the next level and unlocked capabilities.

    Every successful mission run earns 100 XP; levels unlock the capabilities
    that policies may require.

    \b
    Example:
      nexusmon status --format json
    """
    project = project_of(ctx)
    levels = _levels(project)
    completed = gov_state(state_dir_of(ctx, project)).completed_missions
    doc = status_document(completed, levels)
    if fmt == "json":
        echo_json(doc)
    else:
        _print_status(doc, progress(completed, levels))
    return 0


def status_document(completed: int, levels: tuple[Level, ...]) -> dict[str, Any]:
    """The JSON of `status`: level, XP, capabilities, next level and the whole tree."""
    now = progress(completed, levels)
    upcoming = now.next_level
    return {
        "level": now.level.name,
        "xp": now.xp,
        "completed_missions": completed,
        "capabilities": sorted(capabilities_at(completed, levels)),
        "all_capabilities": now.level.unlocks_all,
        "next_level": None if upcoming is None else {
            "name": upcoming.name, "min_missions": upcoming.min_missions,
            "xp": upcoming.min_missions * XP_PER_MISSION, "missions_to_go": now.missions_to_next,
            "progress": round(now.fraction, 3),
        },
        "levels": [_level_json(level, completed) for level in levels],
    }


def _level_json(level: Level, completed: int) -> dict[str, Any]:
    return {
        "name": level.name, "min_missions": level.min_missions,
        "xp": level.min_missions * XP_PER_MISSION, "capabilities": sorted(level.capabilities),
        "unlocks_all": level.unlocks_all, "reached": completed >= level.min_missions,
    }


def _missions(n: int) -> str:
    return f"{n} mission{'' if n == 1 else 's'}"


def _bar(fraction: float) -> str:
    filled = round(fraction * BAR_WIDTH)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + f"] {int(fraction * 100)}%"


def _print_status(doc: dict[str, Any], now: Progress) -> None:
    click.echo(f"level {doc['level']}  {doc['xp']} XP  ({_missions(doc['completed_missions'])} completed)")
    upcoming = doc["next_level"]
    if upcoming is None:
        click.echo("next  none: the top level is reached")
    else:
        click.echo(f"next  {upcoming['name']} at {_missions(upcoming['min_missions'])}: "
                   f"{upcoming['missions_to_go']} to go  {_bar(now.fraction)}")
    held = "every capability" if doc["all_capabilities"] else ", ".join(doc["capabilities"]) or "none yet"
    click.echo(f"capabilities: {held}")
    click.echo("evolution:")
    width = max(len(level["name"]) for level in doc["levels"])
    for level in doc["levels"]:
        mark = "[x]" if level["reached"] else "[ ]"
        unlocks = "every capability" if level["unlocks_all"] else ", ".join(level["capabilities"])
        here = "  <- you are here" if level["name"] == doc["level"] else ""
        click.echo(f"  {mark} {level['name']:<{width}} {level['min_missions']:>4}  {unlocks or '-'}{here}")


# ------------------------------------------------------------------ omens


@click.group(invoke_without_command=True)
@click.option("--mission", help="Only counters of this mission.")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def omens(ctx: click.Context, mission: str | None, fmt: str) -> int:
    """List repeated-failure counters and the level each reached (warn, intervene, lock).

    At `intervene` a task needs approval, at `lock` it is blocked until the
    counter is cleared with `nexusmon omens clear`.

    \b
    Example:
      nexusmon omens --mission deploy
      nexusmon omens clear --mission deploy --task migrate
    """
    if ctx.invoked_subcommand is not None:
        return 0
    project = project_of(ctx)
    thresholds = policy_settings(project).omens
    with existing_ledger(state_dir_of(ctx, project)) as ledger:
        rows = ledger.omens(mission) if ledger else []
    doc = _omens_document(rows, thresholds)
    if fmt == "json":
        echo_json(doc)
    else:
        _print_omens(doc)
    return 0


def _omens_document(rows: list[OmenRow], thresholds: OmenThresholds) -> dict[str, Any]:
    return {
        "thresholds": {"warn": thresholds.warn, "intervene": thresholds.intervene,
                       "lock": thresholds.lock},
        "omens": [
            {"mission": r.mission, "task": r.task_id, "kind": r.kind, "count": r.count,
             "level": omen_level(r.count, thresholds), "last_at": r.last_at}
            for r in rows
        ],
    }


def _print_omens(doc: dict[str, Any]) -> None:
    t = doc["thresholds"]
    limits = f"warn {t['warn']}, intervene {t['intervene']}, lock {t['lock']}"
    if not doc["omens"]:
        click.echo(f"no omens: no repeated failures recorded ({limits})")
        return
    table = [["mission", "task", "kind", "count", "level", "last failure"]]
    table += [[o["mission"], o["task"], o["kind"], str(o["count"]), o["level"] or "-", when(o["last_at"])]
              for o in doc["omens"]]
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for row in table:
        click.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo(f"thresholds: {limits}")


@omens.command("clear")
@click.option("--mission", help="Only counters of this mission.")
@click.option("--task", "task_id", help="Only counters of this task.")
@click.pass_context
def clear(ctx: click.Context, mission: str | None, task_id: str | None) -> int:
    """Reset omen counters and record the reset in the audit trail.

    All counters, a mission's (--mission), or one task's (--task).

    \b
    Example:
      nexusmon omens clear --mission deploy --task migrate
    """
    project = project_of(ctx)
    with existing_ledger(state_dir_of(ctx, project)) as ledger:
        cleared = _clear(ledger, mission, task_id) if ledger else 0
    scope = ", ".join(part for part in (
        f"mission {mission}" if mission else "", f"task {task_id}" if task_id else "") if part)
    click.echo(f"cleared {cleared} omen counter{'' if cleared == 1 else 's'}" + (f" of {scope}" if scope else ""))
    return 0


def _clear(ledger: Ledger, mission: str | None, task_id: str | None) -> int:
    with ledger.transaction():
        cleared = ledger.clear_omens(mission, task_id)
        ledger.append_event("omens.cleared", {"mission": mission, "task": task_id, "cleared": cleared},
                            task_id=task_id)
    return cleared
