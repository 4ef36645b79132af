"""`nexusmon graph`: the task DAG as Mermaid or Graphviz dot."""

from __future__ import annotations

from collections.abc import Sequence

import click

from nexusmon.cli.load import inputs_options, plan_for, project_of
from nexusmon.compile.plan import Plan


@click.command()
@click.argument("mission")
@inputs_options
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.pass_context
def graph(ctx: click.Context, mission: str, assignments: Sequence[str], inputs_files: Sequence[str], fmt: str) -> int:
    """Print the task graph of MISSION.

    \b
    Example:
      nexusmon graph release-notes --format dot | dot -Tsvg > graph.svg
    """
    compiled = plan_for(ctx, project_of(ctx), mission, assignments, inputs_files)
    click.echo("\n".join(mermaid(compiled) if fmt == "mermaid" else dot(compiled)))
    return 0


def mermaid(plan: Plan) -> list[str]:
    names = {t.id: f"t{i}" for i, t in enumerate(plan.tasks)}
    lines = ["flowchart TD"]
    for t in plan.tasks:
        # Mermaid reads labels as HTML with its own entity codes (`#quot;`, `#35;`): codes keep
        # quotes, tags and a literal `#35;` as text ('#' first, as it starts every code).
        label = t.id.replace("#", "#35;").replace("&", "#amp;").replace('"', "#quot;").replace(
            "<", "#lt;").replace(">", "#gt;").replace("\n", "#10;")
        lines.append(f'  {names[t.id]}["{label}"]')
    for t in plan.tasks:
        lines += [f"  {names[n]} --> {names[t.id]}" for n in t.needs]
    return lines


def dot(plan: Plan) -> list[str]:
    lines = [f"digraph {_dot_string(plan.mission.id)} {{", "  rankdir=LR;"]
    lines += [f"  {_dot_string(t.id)} [label={_dot_string(t.id + chr(10) + t.worker)}];" for t in plan.tasks]
    for t in plan.tasks:
        lines += [f"  {_dot_string(n)} -> {_dot_string(t.id)};" for n in t.needs]
    lines.append("}")
    return lines


def _dot_string(text: str) -> str:
    """A DOT quoted string: ``"`` and ``\\`` escaped, line breaks as ``\\n`` (Graphviz's label
    escapes); anything else, non-ASCII included, as it is (DOT has no ``\\u`` escapes)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r\n", "\\n")
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\n") + '"'
