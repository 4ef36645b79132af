"""`nexusmon runs`, `show` and `logs`: the mission feed and what a run left behind."""

from __future__ import annotations

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, echo_json
from nexusmon.cli.load import existing_ledger, project_of, state_dir_of, when
from nexusmon.engine.report import find_run, run_document
from nexusmon.errors import UsageError
from nexusmon.store.ledger import Ledger


@click.command()
@click.option("--mission", help="Only runs of this mission.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def runs(ctx: click.Context, mission: str | None, limit: int, fmt: str) -> int:
    """List recent runs, newest first.

    \b
    Example:
      nexusmon runs --mission release-notes --limit 5
    """
    with existing_ledger(state_dir_of(ctx, project_of(ctx))) as ledger:
        found = ledger.list_runs(limit=limit, mission=mission) if ledger else []
    if fmt == "json":
        echo_json({"runs": [
            {"run_id": r.run_id, "mission": r.mission, "status": r.status, "started_at": r.started_at,
             "finished_at": r.finished_at, "error": r.error, "parent_run_id": r.parent_run_id}
            for r in found
        ]})
        return 0
    if not found:
        click.echo(f"no runs of mission '{mission}'" if mission else "no runs yet")
    for r in found:
        click.echo(f"{r.run_id}  {r.status:<17} {r.mission:<24} {when(r.started_at)}")
    return 0


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def show(ctx: click.Context, run_ref: str, fmt: str) -> int:
    """Show RUN (an id, a unique prefix, or `last`) with every task.

    \b
    Example:
      nexusmon show last --format json
    """
    with Ledger(state_dir_of(ctx, project_of(ctx))) as ledger:
        doc = run_document(ledger, find_run(ledger, run_ref))
    if fmt == "json":
        echo_json(doc)
        return 0
    click.echo(f"run {doc['run_id']}  mission {doc['mission']}  {doc['status']}")
    click.echo(f"started {when(doc['started_at'])}  finished {when(doc['finished_at'])}")
    if doc.get("error"):
        click.echo(f"error: {doc['error']}")
    for t in doc["tasks"]:
        line = f"  {t['status']:<17} {t['id']:<30} {t['rank'] or '-'} {t['decision'] or '-':<8} {t['duration_s']:.2f}s"
        click.echo(line + (f"  {t['error']}" if t.get("error") else ""))
        for art in t["artifacts"]:
            click.echo(f"      artifact {art['path']}@v{art['version']}")
    return 0


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("task")
@click.pass_context
def logs(ctx: click.Context, run_ref: str, task: str) -> int:
    """Print the captured output of TASK in RUN.

    \b
    Example:
      nexusmon logs last build
    """
    with Ledger(state_dir_of(ctx, project_of(ctx))) as ledger:
        run = find_run(ledger, run_ref)
        ids = [r.task_id for r in ledger.task_rows(run.run_id)]
        if task not in ids:
            raise UsageError(f"run {run.run_id} has no task '{task}'")
        text = ledger.logs(run.run_id, task)
    click.echo(text, nl=not text.endswith("\n"))
    return 0
