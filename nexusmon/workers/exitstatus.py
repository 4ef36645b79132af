"""How a finished shell task's process status reads: its exit code and why it failed.

A process killed by signal N reads as exit code 128+N, as a shell reports it
(SIGSEGV 139, SIGTERM 143), and its error names the signal.
"""

from __future__ import annotations

import signal

from nexusmon.util.process import ProcessResult

COMMAND_NOT_FOUND = 127


def failure_of(proc: ProcessResult, exit_code: int, file_error: str | None) -> tuple[str, str] | None:
    """(failure_kind, error) of a finished script, or None when it succeeded."""
    if proc.exit_code is None:
        kind = "not_found" if (proc.error or "").startswith("command not found") else "spawn"
        return kind, proc.error or "could not start the command"
    if proc.timed_out:
        return "timeout", proc.error or "timed out"
    if exit_code == COMMAND_NOT_FOUND:
        return "not_found", f"exit code {exit_code} (command not found)"
    if exit_code != 0 and (proc.exit_code or 0) < 0:
        return "exit_code", f"killed by {_signal_name(-(proc.exit_code or 0))} (exit code {exit_code})"
    if exit_code != 0:
        return "exit_code", f"exit code {exit_code}"
    if file_error is not None:
        return "output_file", file_error
    return None


def shell_status(code: int) -> int:
    """A process killed by signal N reads as 128+N, as in a shell (SIGSEGV 139, SIGTERM 143)."""
    return 128 - code if code < 0 else code


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
