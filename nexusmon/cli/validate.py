"""`nexusmon validate`: schema and semantic checks, compiler-style errors."""

from __future__ import annotations

from pathlib import Path

import click

from nexusmon.cli.common import Globals, echo_json
from nexusmon.cli.load import project_of
from nexusmon.compile.expand import rune_files
from nexusmon.engine.gates import approval_file_problems
from nexusmon.engine.project import Project
from nexusmon.engine.project import validate as validate_project
from nexusmon.errors import Diagnostic, UsageError
from nexusmon.spec.workspace import shown_path


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="text: compiler-style lines; json: one document; github: workflow annotations.")
@click.pass_context
def validate(ctx: click.Context, paths: tuple[str, ...], fmt: str) -> int:
    """Check mission, rune, policy and approval files (all, or the given PATHS).

    Approval files in approvals/ are checked for their fields, their signature
    and a declaring operator. Exit status 1 when problems are found.

    \b
    Example:
      nexusmon validate missions/deploy.yaml --format github
    """
    project = project_of(ctx)
    start: Globals = ctx.find_root().obj
    only = []
    for given in paths:
        path = Path(given) if Path(given).is_absolute() else start.start / given
        if not path.exists():
            raise UsageError(f"no such file or directory: {given}")
        only.append(shown_path(project.root, path))
    only += _runes_used(project, only)
    approval_files, approval_problems = approval_file_problems(project)
    selected = [d for d in approval_problems if _selected(d.location.path, only)]
    problems = _sorted(validate_project(project, only) + selected)
    files = _file_count(project, only) + len([p for p in approval_files if _selected(p, only)])
    if paths and not files and not problems:
        raise UsageError(f"nothing to check in {' '.join(paths)}: validate reads missions/, runes/, "
                         "policies/, approvals/ and nexusmon.yaml of the workspace")
    if fmt == "json":
        echo_json({"ok": not problems, "files": files, "errors": [d.as_json() for d in problems]})
    elif fmt == "github":
        for d in problems:
            click.echo(_annotation(d))
    if fmt != "json":
        for d in problems:
            click.echo(str(d), err=True)
    if fmt == "text":
        _summary(problems, files)
    return 1 if problems else 0


def _runes_used(project: Project, only: list[str]) -> list[str]:
    """The rune files that the selected missions call: their problems are the missions' too."""
    return [path for m in project.workspace.missions if only and _selected(m.path, only)
            for path in rune_files(project.workspace, m, project.loaded.documents)]


def _file_count(project: Project, only: list[str]) -> int:
    return len([p for p in project.loaded.documents if _selected(p, only)])


def _selected(path: str, only: list[str]) -> bool:
    return not only or any(path == o or path.startswith(o.rstrip("/") + "/") or o in ("", ".")
                           for o in only)


def _sorted(problems: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(problems, key=lambda d: (d.location.path, d.location.line, d.location.col))


def _summary(problems: list[Diagnostic], files: int) -> None:
    if not problems:
        click.echo(f"ok: {files} file{'s' if files != 1 else ''} valid")
        return
    broken = len({d.location.path for d in problems})
    click.echo(f"{len(problems)} error{'s' if len(problems) != 1 else ''} in {broken} file{'s' if broken != 1 else ''}", err=True)


def _annotation(d: Diagnostic) -> str:
    message = str(d.message) + (f" ({d.hint})" if d.hint else "")
    loc = d.location
    return (f"::error file={_property(loc.path)},line={loc.line},col={loc.col},"
            f"title=nexusmon validate::{_data(message)}")


def _data(text: str) -> str:
    """A workflow command's message, escaped as the Actions runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """A workflow command property (``file=``): `,` and `:` end it unless escaped."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")
