"""What every command shares: global options, the error boundary, output helpers.

Kept free of heavy imports: it is loaded on every start, `--version` included.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from msgspec import Struct

from nexusmon.errors import InvalidFiles, NexusmonError

FORMAT_TEXT_JSON = click.Choice(["text", "json"])


class Globals(Struct, frozen=True):
    """Options given before the command: `-C DIR` and `--state-dir`."""

    directory: str | None
    state_dir: str | None

    @property
    def start(self) -> Path:
        return Path(self.directory) if self.directory else Path.cwd()


def run_boundary(group: click.Group, argv: list[str] | None) -> int:
    """Run the CLI; turn every error into a message on stderr and an exit code."""
    try:
        result = group.main(args=argv, prog_name="nexusmon", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except InvalidFiles as exc:
        for diagnostic in exc.diagnostics:
            click.echo(str(diagnostic), err=True)
        return exc.exit_code
    except NexusmonError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as exc:  # a bug: short message, no traceback unless asked for
        if os.environ.get("NEXUSMON_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (set NEXUSMON_DEBUG=1 for details)", err=True)
        return 1


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def echo_json(document: Any) -> None:
    """Print one JSON document on stdout: indented for a person, compact for a pipe
    (indenting forces json's pure-Python encoder, which is slow on big plans)."""
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(document, indent=indent, ensure_ascii=False, default=str))
