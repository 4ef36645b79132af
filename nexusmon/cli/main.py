"""The `nexusmon` command: a lazy click group so that start-up stays fast.

Each subcommand lives in its own module and is imported only when it runs;
`nexusmon --version` and `--help` import nothing but click.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys

import click

from nexusmon import __version__
from nexusmon.cli.common import Globals, run_boundary

# name -> (module, attribute, one-line help shown by `nexusmon --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("nexusmon.cli.init", "init", "Scaffold a workspace."),
    "validate": ("nexusmon.cli.validate", "validate", "Check mission, rune and policy files."),
    "plan": ("nexusmon.cli.plan", "plan", "Compile a mission and show what would run."),
    "graph": ("nexusmon.cli.graph", "graph", "Print a mission's task graph."),
    "run": ("nexusmon.cli.run", "run", "Execute a mission."),
    "resume": ("nexusmon.cli.run", "resume", "Continue an interrupted or held run."),
    "runs": ("nexusmon.cli.runs", "runs", "List recent runs."),
    "show": ("nexusmon.cli.runs", "show", "Show one run."),
    "logs": ("nexusmon.cli.runs", "logs", "Print a task's output."),
    "vault": ("nexusmon.cli.vault", "vault", "Browse versioned artifacts."),
    "audit": ("nexusmon.cli.audit", "audit", "Print or verify the audit trail."),
    "approve": ("nexusmon.cli.approve", "approve", "Sign an approval for a held task."),
    "reject": ("nexusmon.cli.approve", "reject", "Reject a held task."),
    "keygen": ("nexusmon.cli.keygen", "keygen", "Create an operator key pair."),
    "status": ("nexusmon.cli.status", "status", "Evolution level, XP and capabilities."),
    "omens": ("nexusmon.cli.status", "omens", "Repeated-failure counters."),
    "policy": ("nexusmon.cli.policy", "policy", "Policy tests and policy diffs."),
    "watch": ("nexusmon.cli.watch", "watch", "Run, then re-run on every change."),
    "doctor": ("nexusmon.cli.doctor", "doctor", "Runtime self-check."),
    "gc": ("nexusmon.cli.gc", "gc", "Remove unreferenced vault objects and old runs."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    module = COMMANDS[name][0]
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nexusmon")
@click.option("-C", "directory", type=click.Path(file_okay=False), help="Run as if started in DIR (the workspace root).")
@click.option("--state-dir", type=click.Path(file_okay=False), envvar="NEXUSMON_STATE_DIR",
              help="Directory holding ledger.db and vault/ (env NEXUSMON_STATE_DIR).")
@click.pass_context
def cli(ctx: click.Context, directory: str | None, state_dir: str | None) -> None:
    """nexusmon: governed mission operations.

    \b
    Example:
      nexusmon validate && nexusmon plan release-notes && nexusmon run release-notes
    """
    ctx.obj = Globals.entered(directory, state_dir)


#: Cyclic-GC thresholds for the CLI process. A plan or a run allocates tens of thousands of
#: long-lived objects and almost no cycles; at CPython's default (700, 10, 10) the collector
#: re-scans them over and over (a fifth of a 10,000-task run). Cycles are still collected.
GC_THRESHOLDS = (100_000, 50, 1000)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one boundary turns errors into messages and exit codes."""
    gc.set_threshold(*GC_THRESHOLDS)
    code = run_boundary(cli, argv)
    # Interpreter exit runs one last full collection over every object the command built,
    # only to free memory the process is about to return (20-30 ms after a 1,000-task run or
    # a validate). Frozen objects are skipped by it; they are still released as modules are
    # cleared, so files close and atexit handlers run as usual.
    gc.freeze()
    sys.exit(code)


