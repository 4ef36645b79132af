"""`nexusmon plan`: the compiled mission with governance decisions, nothing executed."""

from __future__ import annotations

from collections.abc import Sequence

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, echo_json
from nexusmon.cli.load import inputs_options, plan_for, project_of, state_dir_of
from nexusmon.engine.cacheview import cache_states
from nexusmon.engine.governing import govern_plan, task_facts
from nexusmon.engine.history import gov_state
from nexusmon.engine.planview import PlanRow, plan_document, plan_rows
from nexusmon.errors import UsageError
from nexusmon.govern.evaluate import explain as explain_verdict


@click.command()
@click.argument("mission")
@inputs_options
@click.option("--explain", "explain_task", metavar="TASK", help="Print the full governance derivation of TASK.")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def plan(
    ctx: click.Context, mission: str, assignments: Sequence[str], inputs_files: Sequence[str],
    explain_task: str | None, fmt: str,
) -> int:
    """Compile MISSION (an id or a path) and show tasks in order with rank, decision,
    reasons, cache state and score.

    \b
    Example:
      nexusmon plan release-notes -i tag=v2.0.0 --format json
    """
    project = project_of(ctx)
    compiled = plan_for(ctx, project, mission, assignments, inputs_files)
    state_dir = state_dir_of(ctx, project)
    state = gov_state(state_dir, compiled.mission.id)
    if explain_task is not None:
        task = compiled.task(explain_task)
        if task is None:
            raise UsageError(f"mission '{compiled.mission.id}' has no task '{explain_task}'")
        for line in explain_verdict(task_facts(compiled, task, project), project.workspace.policies,
                                    state.for_task(compiled.mission.id, task.id)):
            click.echo(line)
        return 0
    verdicts = govern_plan(compiled, project, state)
    rows = plan_rows(compiled, verdicts, cache_states(compiled, state_dir))
    if fmt == "json":
        echo_json(plan_document(compiled, rows))
    else:
        _print_plan(compiled.mission.id, compiled.mission.objective, rows)
    return 0


def _print_plan(mission: str, objective: str, rows: list[PlanRow]) -> None:
    click.echo(f"mission {mission}: {objective}")
    table = [["#", "task", "worker", "rank", "decision", "cache", "score", "needs"]]
    for i, row in enumerate(rows, start=1):
        table.append([str(i), row.id, row.worker, row.rank, row.decision, row.cache,
                      row.score_band, ", ".join(row.needs) or "-"])
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    for n, line in enumerate(table):
        click.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if n == 0:
            continue
        row = rows[n - 1]
        for reason in row.notes:
            click.echo(f"      - {reason}")
    click.echo(_totals(rows))


def _totals(rows: list[PlanRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.decision] = counts.get(row.decision, 0) + 1
    parts = [f"{n} {d}" for d, n in counts.items()]
    return f"{len(rows)} task{'s' if len(rows) != 1 else ''}: " + ", ".join(parts)


