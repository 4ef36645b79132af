"""`nexusmon gc`: remove unreferenced vault objects, stale temp files and old runs."""

from __future__ import annotations

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, echo_json
from nexusmon.cli.load import project_of, state_dir_of
from nexusmon.engine.gc import Freed, collect
from nexusmon.store.ledger import LEDGER_FILE, Ledger


@click.command()
@click.option("--keep-runs", type=click.IntRange(min=0), metavar="N",
              help="Also delete finished runs (with their tasks and logs) beyond the N newest.")
@click.option("--include-unfinished", is_flag=True,
              help="With --keep-runs, also delete older running, interrupted and held runs "
                   "that no live process drives.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed, remove nothing.")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def gc(ctx: click.Context, keep_runs: int | None, include_unfinished: bool, dry_run: bool,
       fmt: str) -> int:
    """Remove vault objects no artifact version references and temp files
    untouched for an hour (left by interrupted runs); with --keep-runs,
    forget older finished runs.

    Older runs that `resume` can still finish (running, interrupted,
    awaiting approval) are kept unless --include-unfinished is given; a run
    that a live nexusmon process drives is never removed. Artifact versions
    and audit records are never removed: the vault keeps its history and
    `nexusmon audit verify` still passes (a `gc.completed` record says what
    was freed).

    \b
    Example:
      nexusmon gc --keep-runs 100 --dry-run
    """
    project = project_of(ctx)
    state_dir = state_dir_of(ctx, project)
    if not (state_dir / LEDGER_FILE).is_file():
        freed = Freed(dry_run=dry_run)
    else:
        with Ledger(state_dir) as ledger:
            freed = collect(ledger, project.root, keep_runs, dry_run, unfinished=include_unfinished)
    if fmt == "json":
        echo_json(freed.as_json())
    else:
        click.echo(_summary(freed))
    return 0


def _summary(freed: Freed) -> str:
    verb = "would remove" if freed.dry_run else "removed"
    line = (
        f"{verb} {len(freed.objects)} vault object(s) ({_bytes(freed.object_bytes)}), "
        f"{len(freed.temp_files)} temp file(s) ({_bytes(freed.temp_bytes)}), {len(freed.runs)} run(s)"
    )
    if freed.kept_live:
        line += f"; kept {len(freed.kept_live)} run(s) a live nexusmon process drives"
    if freed.kept_unfinished:
        line += (f"; kept {len(freed.kept_unfinished)} unfinished run(s) that `nexusmon resume` "
                 "can finish (--include-unfinished removes them)")
    return line


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
