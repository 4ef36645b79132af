"""`nexusmon init`: scaffold a workspace that validates and plans."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from nexusmon.cli.common import Globals
from nexusmon.schemas import KINDS, schema_text

GITIGNORE_LINE = ".nexusmon/"


@click.command()
@click.pass_context
def init(ctx: click.Context) -> int:
    """Scaffold a workspace here (or in -C DIR): folders, default policy,
    schemas, .gitignore and an example mission. Existing files are kept.

    \b
    Example:
      mkdir ops && cd ops && nexusmon init && nexusmon run hello
    """
    globals_: Globals = ctx.find_root().obj
    root = globals_.start.resolve()
    created: list[str] = []
    for folder in ("missions", "runes", "policies", "plugins", "schemas"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    files = {f"schemas/{kind}.schema.json": schema_text(kind) for kind in KINDS}
    files["policies/default.yaml"] = _scaffold("default-policy.yaml")
    files["missions/hello.yaml"] = _scaffold("hello.yaml")
    for rel, text in files.items():
        if _write_new(root / rel, text):
            created.append(rel)
    for rel in created:
        click.echo(f"created {rel}")
    ignore = _ignore_state(root / ".gitignore")
    if ignore:
        click.echo(f"{ignore} .gitignore")
    click.echo(f"workspace ready at {root}; try: nexusmon plan hello && nexusmon run hello")
    return 0


def _scaffold(name: str) -> str:
    return resources.files("nexusmon.scaffold").joinpath(name).read_text(encoding="utf-8")


def _write_new(path: Path, text: str) -> bool:
    if path.exists():
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _ignore_state(path: Path) -> str | None:
    """Add the state directory to ``path``: "created" or "appended to", None when it is there."""
    existed = path.exists()
    existing = path.read_text(encoding="utf-8") if existed else ""
    if any(line.strip() in (".nexusmon", ".nexusmon/") for line in existing.splitlines()):
        return None
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    path.write_text(existing + prefix + GITIGNORE_LINE + "\n", encoding="utf-8")
    return "appended to" if existed else "created"
