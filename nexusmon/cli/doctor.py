"""`nexusmon doctor`: is this workspace and its state healthy?"""

from __future__ import annotations

import os
import sys

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, Globals, echo_json
from nexusmon.cli.load import project_of, state_dir_of
from nexusmon.engine.doctor import (
    Check,
    environment_checks,
    missing_workspace,
    version_check,
    workspace_checks,
)
from nexusmon.errors import UsageError
from nexusmon.spec.workspace import find_root

_MARKS = {"ok": "ok", "fail": "FAIL", "info": "info"}


@click.command()
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def doctor(ctx: click.Context, fmt: str) -> int:
    """Check the workspace, its files, schemas, plugins and operator keys, and
    the state directory: ledger integrity, a sample of vault objects, the
    audit chain. Creates nothing.

    Exit status: 0 when no check fails (info lines never fail), 1 otherwise.

    \b
    Example:
      nexusmon doctor --format json
    """
    checks = [version_check(), *_checks(ctx), *environment_checks(os.environ)]
    failed = [c for c in checks if c.failed]
    if fmt == "json":
        echo_json({"ok": not failed, "checks": [c.as_json() for c in checks]})
    else:
        _print(checks, len(failed))
    return 1 if failed else 0


def _checks(ctx: click.Context) -> list[Check]:
    globals_: Globals = ctx.find_root().obj
    try:
        root = find_root(globals_.start)
    except UsageError as exc:
        return [missing_workspace(str(exc))]
    project = project_of(ctx, root)
    return workspace_checks(project, state_dir_of(ctx, project))


def _print(checks: list[Check], failed: int) -> None:
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = _MARKS[check.status.value]
        line = f"{mark:<5} {check.name:<{width}}  {check.detail}"
        click.echo(click.style(line, fg="red") if check.failed and _tty() else line)
        if check.hint and check.status.value != "ok":
            click.echo(f"{'':<5} {'':<{width}}  hint: {check.hint}")
    click.echo(f"{failed} check(s) failed" if failed else "all checks passed")


def _tty() -> bool:
    return sys.stdout.isatty()
