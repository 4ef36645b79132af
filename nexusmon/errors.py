"""The one exception root and the located diagnostics every stage reports."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import Struct


class Location(Struct, frozen=True):
    """A position in a workspace file; line and column are 1-based."""

    path: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class Diagnostic(Struct, frozen=True):
    """One located problem, printed compiler-style."""

    location: Location
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        """One line, whatever names and values the message quotes (a task id may hold a newline)."""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.location}: error: {self.message}{hint}".translate(_ONE_LINE)

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.location.path,
            "line": self.location.line,
            "col": self.location.col,
            "message": self.message,
            "hint": self.hint,
        }


#: Characters that end a line for some reader (str.splitlines, editors, CI log viewers) or
#: drive a terminal, written as escapes instead: ``\n``, ``\x1b``, ``\u2028``.
_ONE_LINE = {
    code: ("\\n" if code == 10 else "\\r" if code == 13 else
           f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029) if code != 9
}


class NexusmonError(Exception):
    """Root of every error nexusmon reports to a user; ``exit_code`` is the CLI status."""

    exit_code = 2
    run_id: str | None = None  # set when the error ended a run that had been recorded


class UsageError(NexusmonError):
    """A wrong argument, an unknown name on the command line, a bad input value."""


class InvalidFiles(NexusmonError):
    """Workspace files failed validation; carries every diagnostic found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(
            set(diagnostics),
            key=lambda d: (d.location.path, d.location.line, d.location.col, d.message),
        )
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class StateError(NexusmonError):
    """The state directory (ledger, vault, audit) is unusable or inconsistent."""

    exit_code = 1
