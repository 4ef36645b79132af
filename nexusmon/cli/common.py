"""What every command shares: global options, the error boundary, output helpers.

Kept free of heavy imports: it is loaded on every start, `--version` included.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
from msgspec import Struct

from nexusmon.errors import InvalidFiles, NexusmonError, UsageError
from nexusmon.util.capture import descriptor_1_to_stderr

FORMAT_TEXT_JSON = click.Choice(["text", "json"])


class Globals(Struct, frozen=True):
    """Options given before the command: `-C DIR` and `--state-dir`."""

    directory: str | None  # a -C DIR that does not exist yet (`init` creates it); else None
    state_dir: str | None

    @classmethod
    def entered(cls, directory: str | None, state_dir: str | None) -> Globals:
        """As `git -C` and `make -C`: change to DIR first, so that every relative path given
        to the command (files to validate, missions, --inputs-file, --junit, --state-dir)
        is read from DIR. A DIR that does not exist is kept for `init` to create."""
        if directory and os.path.isdir(directory):
            try:
                os.chdir(directory)
            except OSError as exc:
                raise click.UsageError(f"cannot change to -C {directory}: {exc.strerror}") from None
            directory = None
        return cls(directory, state_dir)

    @property
    def start(self) -> Path:
        return Path(self.directory) if self.directory else Path.cwd()


def run_boundary(group: click.Group, argv: list[str] | None) -> int:
    """Run the CLI; turn every error into a message on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    undecodable = next((arg for arg in args if not _is_utf8(arg)), None)
    if undecodable is not None:
        refused = UsageError(f"argument {_shown(undecodable)} is not valid UTF-8 "
                             "(nexusmon reads names, values and paths as UTF-8 text)")
        click.echo(f"error: {refused}", err=True)
        if _wants_json(args):
            echo_json(_undecodable_refusal(args, refused))
        return refused.exit_code
    if sys.stdout is sys.__stdout__ and type(sys.stdout) is io.TextIOWrapper:
        sys.stdout = ReaderSafeStdout(sys.stdout)
    try:
        return _run(group, args)
    except NexusmonError as exc:
        if _wants_json(args) and not getattr(sys.stdout, "wrote", True):
            echo_json(refusal(exc))
        return exc.exit_code
    finally:
        sys.stdout.flush()


def _undecodable_refusal(args: list[str], refused: UsageError) -> dict[str, Any]:
    """The refusal document of a command line nexusmon cannot read; for `run` and `resume`
    it has the run document's fields, as any other refusal of theirs does."""
    command, words = None, iter(args)
    for word in words:
        if word in ("-C", "--state-dir"):
            next(words, None)  # the option's value
        elif not word.startswith("-"):
            command = word
            break
    if command in ("run", "resume"):
        return {"run_id": None, "mission": None, "status": "refused", **refusal(refused), "tasks": []}
    return refusal(refused)


def refusal(exc: NexusmonError) -> dict[str, Any]:
    """Why a command did nothing, as JSON: ``error``, ``exit_code`` and the located ``errors``."""
    diagnostics = exc.diagnostics if isinstance(exc, InvalidFiles) else []
    return {"error": str(exc), "exit_code": exc.exit_code, "errors": [d.as_json() for d in diagnostics]}


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for ``--format json`` (SPEC: one JSON document on stdout)."""
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in zip(args, args[1:]))


class ReaderSafeStdout(io.TextIOWrapper):
    """The process's stdout, minus the error when its reader goes away (`nexusmon audit | head -1`).

    What was not read is not wanted; the command finishes and exits with its own
    status (click would exit 1, which reads as "a task failed").
    """

    def __init__(self, stdout: io.TextIOWrapper) -> None:
        super().__init__(stdout.buffer, encoding=stdout.encoding, errors=stdout.errors,
                         line_buffering=stdout.line_buffering)
        self._original = stdout  # shares the buffer: keep it from closing it when collected
        self.wrote = False  # whether the command printed anything (see run_boundary)

    def write(self, text: str) -> int:
        self.wrote = self.wrote or bool(text)
        try:
            return super().write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        try:
            super().flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        silence(self)
        with contextlib.suppress(OSError):
            super().flush()  # what is still buffered now goes to /dev/null


def _run(group: click.Group, args: list[str]) -> int:
    try:
        result = group.main(args=args, prog_name="nexusmon", standalone_mode=False)
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
        raise
    except NexusmonError as exc:
        click.echo(f"error: {exc}", err=True)
        raise
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:  # the reader went away (`nexusmon runs | head -1`): nothing more to say
        silence(sys.stdout)
        return 0
    except Exception as exc:  # a bug: short message, no traceback unless asked for
        if os.environ.get("NEXUSMON_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.filename is not None:
            # a file the user named, or the system, got in the way: not a bug in nexusmon
            click.echo(f"error: {exc.filename}: {exc.strerror or exc}", err=True)
        else:
            click.echo(f"internal error: {type(exc).__name__}: {exc} (set NEXUSMON_DEBUG=1 for details)",
                       err=True)
        return 1


def _is_utf8(arg: str) -> bool:
    """False for an argument that held bytes that are not UTF-8 (Python passes them on as
    lone surrogates, which no file, ledger row or JSON document can hold)."""
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(arg: str) -> str:
    """``arg`` quoted, with its undecodable bytes as ``\\xff`` escapes."""
    try:
        raw = arg.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte (not from a real argv)
        return ascii(arg)
    return "'" + raw.decode("utf-8", "backslashreplace") + "'"


def silence(stream: IO[str]) -> None:
    """Point ``stream``'s descriptor at /dev/null once its reader went away (`| head`), so that
    later writes and the flush at exit succeed quietly instead of raising again."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # a stream without a descriptor (io.UnsupportedOperation)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextlib.contextmanager
def stdout_reserved(reserve: bool = True) -> Iterator[None]:
    """While tasks run, what anything writes to file descriptor 1 goes to stderr.

    With ``--format json`` stdout carries one JSON document; a subprocess that a
    ``python`` task or a plugin starts writes straight to descriptor 1, past any
    capture (`git --version` printed ahead of the document broke `jq`).
    """
    if not reserve:
        yield
        return
    with descriptor_1_to_stderr():
        yield


def echo_json(document: Any) -> None:
    """Print one JSON document on stdout: indented for a person, compact for a pipe
    (indenting forces json's pure-Python encoder, which is slow on big plans)."""
    indent = 2 if sys.stdout.isatty() else None
    try:
        click.echo(json.dumps(document, indent=indent, ensure_ascii=False, default=str))
    except BrokenPipeError:  # `| head`: the document is not wanted; the command's exit code still is
        silence(sys.stdout)
