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
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.location}: error: {self.message}{hint}"

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.location.path,
            "line": self.location.line,
            "col": self.location.col,
            "message": self.message,
            "hint": self.hint,
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
