"""The ``shell`` worker: runs a task's ``run`` script.

A script that is one plain command (words of ``[A-Za-z0-9_./:,@%+=-]`` separated
by spaces, not a shell builtin or keyword, no assignment first) is executed
directly, without a shell: the same result, one process less. Anything else
runs as ``bash -e -c SCRIPT`` (``sh -e -c`` where bash is missing). When a plain
command cannot be started (not found, not executable, no ``#!`` line), bash runs
it after all, so the exit code (127, 126, or the script's own) and the message
in the log are bash's. A script longer than :data:`SCRIPT_ARG_LIMIT` bytes is
too long for one argument to bash: it is written to a file beside
``$NEXUSMON_OUTPUT`` (the state directory's ``tmp/``) and run as ``bash -e FILE``.

Outputs: ``stdout`` (trailing newlines stripped), ``exit_code``, plus what the
script appends to ``$NEXUSMON_OUTPUT``: ``key=value`` lines (the value is
everything after the first ``=``) or GitHub-style multi-line values::

    notes<<EOF
    line one
    line two
    EOF

Blank lines are ignored; any other line, a bad key, an unclosed block or a
reserved key (``stdout``, ``exit_code``) fails the task with the line number.
A file over :data:`MAX_OUTPUT_FILE` bytes fails the task unread.
Secrets are masked in outputs, errors and the log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nexusmon.errors import NexusmonError
from nexusmon.util.masking import Masker
from nexusmon.util.process import ProcessResult, run_process
from nexusmon.workers.base import Result, Task
from nexusmon.workers.exitstatus import COMMAND_NOT_FOUND, failure_of, shell_status

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
#: Scripts up to this many UTF-8 bytes go to bash as one argument (``-c``); longer ones through a
#: file. The kernel takes at most 128 KiB per argument and ~2 MiB for arguments and environment.
SCRIPT_ARG_LIMIT = 65536
#: The most ``$NEXUSMON_OUTPUT`` may hold, as much as captured stdout: outputs live in the ledger
#: and in every downstream task's template context.
MAX_OUTPUT_FILE = 1_000_000


class OutputFileError(NexusmonError):
    """A line of ``$NEXUSMON_OUTPUT`` that is not ``key=value`` or ``key<<DELIM``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"$NEXUSMON_OUTPUT line {line}: {message}")
        self.line = line


class OutputFileTooLarge(NexusmonError):
    """A ``$NEXUSMON_OUTPUT`` file over :data:`MAX_OUTPUT_FILE` bytes."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"$NEXUSMON_OUTPUT is {size} bytes, over the limit of {MAX_OUTPUT_FILE} bytes "
            "(write big results to a file and declare it under artifacts)"
        )


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
    return direct_argv(script) or [_shell(), "-e", "-c", script]


@functools.lru_cache(maxsize=1)
def _shell() -> str:
    return shutil.which("bash") or shutil.which("sh") or "/bin/sh"


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
        script = str(task.params.get("run", ""))
        try:
            with _output_file(task.output_file) as output_file:
                env = {**task.env, "NEXUSMON_OUTPUT": str(output_file)}
                proc, not_started = await _run_script(script, task, env, masker, output_file)
                try:
                    written, file_error = _read_written(output_file), None
                except OutputFileTooLarge as exc:
                    written, file_error = "", str(exc)
        except OSError as exc:  # the output file (or a long script's file) cannot be created or read
            error = masker.mask(f"$NEXUSMON_OUTPUT: {exc.strerror or exc}: {exc.filename}")
            return Result(ok=False, error=error, failure_kind="output_file")
        return _result(proc, written, masker, not_started, file_error)


async def _run_script(
    script: str, task: Task, env: Mapping[str, str], masker: Masker, output_file: Path,
) -> tuple[ProcessResult, ProcessResult | None]:
    """The finished script, and the failed direct start that bash then took over (or None)."""

    async def run(argv: Sequence[str]) -> ProcessResult:
        return await run_process(argv, cwd=task.cwd, env=env, timeout=task.timeout, masker=masker,
                                 on_line=task.on_output)

    if len(script) > SCRIPT_ARG_LIMIT // 4 and _utf8_size(script) > SCRIPT_ARG_LIMIT:
        with _script_file(script, output_file) as path:
            return await run([_shell(), "-e", str(path)]), None
    argv = direct_argv(script)
    if argv is None:
        return await run([_shell(), "-e", "-c", script]), None
    proc = await run(argv)
    if proc.exit_code is not None:
        return proc, None
    # Nothing started, so nothing ran: bash runs it instead and does what it does with such a
    # command (126 "Permission denied", 127 "command not found", a file without #! as a script).
    return await run([_shell(), "-e", "-c", script]), proc


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


@contextlib.contextmanager
def _script_file(script: str, output_file: Path) -> Iterator[Path]:
    """``script`` in a private file beside the output file, removed afterwards."""
    path = output_file.with_name(output_file.name + ".sh")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(script)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


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
    """What the script wrote to its output file ("" when it wrote nothing or removed it);
    raises :class:`OutputFileTooLarge` past :data:`MAX_OUTPUT_FILE` bytes."""
    try:
        size = path.stat().st_size
        if size == 0:
            return ""
        if size > MAX_OUTPUT_FILE:
            raise OutputFileTooLarge(size)
        with open(path, "rb") as fh:
            data = fh.read(MAX_OUTPUT_FILE + 1)  # something still running may be appending
    except FileNotFoundError:
        return ""
    if len(data) > MAX_OUTPUT_FILE:
        raise OutputFileTooLarge(max(len(data), path.stat().st_size))
    return data.decode("utf-8", errors="replace")


def _result(
    proc: ProcessResult, written: str, masker: Masker, not_started: ProcessResult | None = None,
    file_error: str | None = None,
) -> Result:
    exit_code = COMMAND_NOT_FOUND if proc.exit_code is None else shell_status(proc.exit_code)
    outputs: dict[str, Any] = {"stdout": proc.stdout.rstrip("\n"), "exit_code": exit_code}
    if file_error is None:
        try:
            outputs = {**masker.mask_value(parse_output_file(written)), **outputs}
        except OutputFileError as exc:
            file_error = str(exc)
    failure = failure_of(proc, exit_code, file_error and masker.mask(file_error))
    if failure is not None and not_started is not None and exit_code in (126, COMMAND_NOT_FOUND):
        failure = failure_of(not_started, exit_code, None)  # in our words: "command not found: NAME"
    kind, error = failure or (None, None)
    return Result(
        ok=kind is None,
        outputs=outputs,
        error=error,
        failure_kind=kind,
        log=proc.combined,
        cpu_s=proc.cpu_s,
        peak_rss_kb=proc.peak_rss_kb,
    )
