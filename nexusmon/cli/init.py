"""`nexusmon init`: scaffold a workspace that validates and plans."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from nexusmon.cli.common import Globals
from nexusmon.schemas import KINDS, schema_text
from nexusmon.spec.workspace import yaml_files
from nexusmon.util.atomic import write_atomic

GITIGNORE_LINE = ".nexusmon/"


@click.command()
@click.pass_context
def init(ctx: click.Context) -> int:
    """Scaffold a workspace here (or in -C DIR): folders, default policy,
    schemas, .gitignore and an example mission.

    Files that exist are kept. The example mission and the default policy are
    added only where `missions/` and `policies/` hold no YAML file yet, so
    running init again in a workspace (to refresh `schemas/` after an upgrade)
    never changes its missions or its governance.

    \b
    Example:
      mkdir ops && cd ops && nexusmon init && nexusmon run hello
    """
    globals_: Globals = ctx.find_root().obj
    root = globals_.start.resolve()
    for folder in ("missions", "runes", "policies", "plugins", "schemas"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        rel = f"schemas/{kind}.schema.json"
        done = _write(root / rel, schema_text(kind))
        if done:
            click.echo(f"{done} {rel}")
    for folder, rel, name in (("policies", "policies/default.yaml", "default-policy.yaml"),
                              ("missions", "missions/hello.yaml", "hello.yaml")):
        if yaml_files(root / folder):
            continue  # the workspace has its own: an example would clash with it or change it
        if _write(root / rel, _scaffold(name), replace=False):
            click.echo(f"created {rel}")
    ignore = _ignore_state(root / ".gitignore")
    if ignore:
        click.echo(f"{ignore} .gitignore")
    example = "hello" if (root / "missions/hello.yaml").is_file() else "MISSION"
    click.echo(f"workspace ready at {root}; try: nexusmon plan {example} && nexusmon run {example}")
    return 0


def _scaffold(name: str) -> str:
    return resources.files("nexusmon.scaffold").joinpath(name).read_text(encoding="utf-8")


def _write(path: Path, text: str, replace: bool = True) -> str | None:
    """Write ``text`` to ``path``: "created", "updated" (``replace`` and it differed) or None."""
    if path.exists():
        if not replace or path.read_text(encoding="utf-8") == text:
            return None
        write_atomic(path, text.encode("utf-8"))
        return "updated"
    write_atomic(path, text.encode("utf-8"))
    return "created"


def _ignore_state(path: Path) -> str | None:
    """Add the state directory to ``path``: "created" or "appended to", None when it is there."""
    existed = path.exists()
    existing = path.read_text(encoding="utf-8") if existed else ""
    if any(line.strip() in (".nexusmon", ".nexusmon/") for line in existing.splitlines()):
        return None
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    path.write_text(existing + prefix + GITIGNORE_LINE + "\n", encoding="utf-8")
    return "appended to" if existed else "created"
