"""The ``shell`` worker: runs a task's ``run`` script.

A script that is one plain command (words of ``[A-Za-z0-9_./:,@%+=-]`` separated
by spaces, not a shell builtin or keyword, no assignment first) is executed
directly, without a shell: the same result, one process less. Anything else
runs as ``bash -e -c SCRIPT`` (``sh -e -c`` where bash is missing).

Outputs: ``stdout`` (trailing newlines stripped), ``exit_code``, plus what the
script appends to ``$NEXUSMON_OUTPUT``: ``key=value`` lines (the value is
everything after the first ``=``) or GitHub-style multi-line values::

    notes<<EOF
    line one
    line two
    EOF

Blank lines are ignored; any other line, a bad key, an unclosed block or a
reserved key (``stdout``, ``exit_code``) fails the task with the line number.
Secrets are masked in outputs, errors and the log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nexusmon.errors import NexusmonError
from nexusmon.util.masking import Masker
from nexusmon.util.process import ProcessResult, run_process
from nexusmon.workers.base import Result, Task

_PLAIN_COMMAND = re.compile(r"[A-Za-z0-9_./:,@%+-]+(?: +[A-Za-z0-9_./:,@%+=-]+)*")
_OUTPUT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_RESERVED_KEYS = frozenset({"stdout", "exit_code"})
# Builtins that also exist as programs and behave the same for plain arguments.
_SAME_AS_PROGRAM = frozenset({"true", "false", "echo", "printf", "test"})
# Bash builtins and keywords: these need a shell even when the line looks plain.
_SHELL_WORDS = frozenset(
    {
        "!",
        ":",
        ".",
        "[",
        "[[",
        "]]",
        "{",
        "}",
        "alias",
        "bg",
        "bind",
        "break",
        "builtin",
        "caller",
        "case",
        "cd",
        "command",
        "compgen",
        "complete",
        "compopt",
        "continue",
        "coproc",
        "declare",
        "dirs",
        "disown",
        "do",
        "done",
        "echo",
        "elif",
        "else",
        "enable",
        "esac",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "fi",
        "for",
        "function",
        "getopts",
        "hash",
        "help",
        "history",
        "if",
        "in",
        "jobs",
        "kill",
        "let",
        "local",
        "logout",
        "mapfile",
        "popd",
        "printf",
        "pushd",
        "pwd",
        "read",
        "readarray",
        "readonly",
        "return",
        "select",
        "set",
        "shift",
        "shopt",
        "source",
        "suspend",
        "test",
        "then",
        "time",
        "times",
        "trap",
        "true",
        "type",
        "typeset",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "until",
        "wait",
        "while",
    }
)
COMMAND_NOT_FOUND = 127


class OutputFileError(NexusmonError):
    """A line of ``$NEXUSMON_OUTPUT`` that is not ``key=value`` or ``key<<DELIM``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"$NEXUSMON_OUTPUT line {line}: {message}")
        self.line = line


def direct_argv(script: str) -> list[str] | None:
    """The argv to exec ``script`` without a shell, or None when it needs one."""
    command = script.strip(" \n")
    if not _PLAIN_COMMAND.fullmatch(command):
        return None
    argv = command.split()
    if argv[0] in _SHELL_WORDS:
        plain_args = not any(arg.startswith("-") for arg in argv[1:])
        if argv[0] not in _SAME_AS_PROGRAM or not plain_args:
            return None
    return argv


def shell_argv(script: str) -> list[str]:
    """The argv that runs ``script``: direct when plain, else through bash/sh."""
    return direct_argv(script) or [*_shell_prefix(), script]


@functools.lru_cache(maxsize=1)
def _shell_prefix() -> tuple[str, ...]:
    bash = shutil.which("bash")
    if bash:
        return (bash, "-e", "-c")
    return (shutil.which("sh") or "/bin/sh", "-e", "-c")


def parse_output_file(text: str) -> dict[str, str]:
    """Outputs written to ``$NEXUSMON_OUTPUT``; raises :class:`OutputFileError`."""
    outputs: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        if not line.strip():
            continue
        heredoc = "<<" in line and ("=" not in line or line.index("<<") < line.index("="))
        if heredoc:
            key, delimiter = line.split("<<", 1)
            value, index = _heredoc(lines, index, number, key, delimiter)
        elif "=" in line:
            key, value = line.split("=", 1)
        else:
            raise OutputFileError(number, f"expected key=value or key<<DELIMITER, got {line!r}")
        outputs[_checked_key(key, number)] = value
    return outputs


def _heredoc(
    lines: list[str], start: int, number: int, key: str, delimiter: str
) -> tuple[str, int]:
    """The block value starting at ``start`` and the index after its delimiter."""
    if not delimiter.strip():
        raise OutputFileError(number, f"missing delimiter after '{key}<<'")
    for end in range(start, len(lines)):
        if lines[end] == delimiter:
            return "\n".join(lines[start:end]), end + 1
    raise OutputFileError(number, f"'{key}<<{delimiter}' is never closed by a '{delimiter}' line")


def _checked_key(key: str, number: int) -> str:
    if not _OUTPUT_KEY.fullmatch(key):
        raise OutputFileError(
            number,
            f"invalid output name {key!r} (letters, digits, '_', '.', '-'; no leading digit)",
        )
    if key in _RESERVED_KEYS:
        raise OutputFileError(number, f"output {key!r} is set by the shell worker")
    return key


PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["run"],
    "additionalProperties": False,
    "properties": {
        "run": {"type": "string", "description": "The script (what `run:` sets)."},
        "cwd": {"type": "string", "description": "Working directory, inside the workspace."},
    },
}


class ShellWorker:
    """Runs ``run`` scripts in the task's working directory."""

    name = "shell"
    capabilities: list[str] = []  # noqa: RUF012 - the plugin contract's attribute
    risk_level = "D"
    requires_approval = False
    params_schema: dict[str, Any] | None = PARAMS_SCHEMA

    async def execute(self, task: Task) -> Result:
        masker = Masker(task.secrets)
        try:
            with _output_file(task.output_file) as output_file:
                env = {**task.env, "NEXUSMON_OUTPUT": str(output_file)}
                proc = await run_process(
                    shell_argv(str(task.params.get("run", ""))),
                    cwd=task.cwd,
                    env=env,
                    timeout=task.timeout,
                    masker=masker,
                    on_line=task.on_output,
                )
                written = _read_written(output_file)
        except OSError as exc:  # the output file cannot be created or read
            error = masker.mask(f"$NEXUSMON_OUTPUT: {exc.strerror or exc}: {exc.filename}")
            return Result(ok=False, error=error, failure_kind="output_file")
        return _result(proc, written, masker)


@contextlib.contextmanager
def _output_file(given: Path | None) -> Iterator[Path]:
    """The path of the output file; a temporary one, removed after, when none is given.

    A given path is not created up front (the script creates it when it writes, as
    ``>> "$NEXUSMON_OUTPUT"`` does); a leftover from an interrupted attempt is removed.
    """
    if given is not None:
        try:
            os.unlink(given)
        except FileNotFoundError:  # the usual case; make sure the script can create it
            if not os.path.isdir(given.parent):
                given.parent.mkdir(parents=True, exist_ok=True)
        yield given
        return
    fd, name = tempfile.mkstemp(prefix="nexusmon-output-")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _read_written(path: Path) -> str:
    """What the script wrote to its output file ("" when it wrote nothing or removed it)."""
    try:
        if path.stat().st_size == 0:
            return ""
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _result(proc: ProcessResult, written: str, masker: Masker) -> Result:
    exit_code = COMMAND_NOT_FOUND if proc.exit_code is None else proc.exit_code
    outputs: dict[str, Any] = {"stdout": proc.stdout.rstrip("\n"), "exit_code": exit_code}
    try:
        outputs = {**masker.mask_value(parse_output_file(written)), **outputs}
        file_error = None
    except OutputFileError as exc:
        file_error = masker.mask(str(exc))
    kind, error = _failure(proc, exit_code, file_error) or (None, None)
    return Result(
        ok=kind is None,
        outputs=outputs,
        error=error,
        failure_kind=kind,
        log=proc.combined,
        cpu_s=proc.cpu_s,
        peak_rss_kb=proc.peak_rss_kb,
    )


def _failure(proc: ProcessResult, exit_code: int, file_error: str | None) -> tuple[str, str] | None:
    """(failure_kind, error) of a finished script, or None when it succeeded."""
    if proc.exit_code is None:
        kind = "not_found" if (proc.error or "").startswith("command not found") else "spawn"
        return kind, proc.error or "could not start the command"
    if proc.timed_out:
        return "timeout", proc.error or "timed out"
    if exit_code == COMMAND_NOT_FOUND:
        return "not_found", f"exit code {exit_code} (command not found)"
    if exit_code != 0:
        return "exit_code", f"exit code {exit_code}"
    if file_error is not None:
        return "output_file", file_error
    return None
