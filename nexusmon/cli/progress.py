"""Live progress of a run: one plain line per event (stderr when stdout carries JSON).

A line is shown when its task starts, or ends after running a worker. Lines of tasks
settled without running anything (cached, skipped, held, cancelled) come in bursts and
are shown together, when the run next starts a task, waits, or ends: an up-to-date
re-run of 1,000 tasks writes its lines at once instead of one write each.

Progress is a courtesy: once its stream cannot be written (`nexusmon run x | head -2`,
a closed terminal), printing stops quietly and the run carries on to its own end.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from typing import IO, Any

import click

from nexusmon.cli.common import silence
from nexusmon.compile.plan import PlannedTask
from nexusmon.spec.model import TaskStatus

_MARKS = {
    "succeeded": "ok", "cached": "cached", "skipped": "skipped", "failed": "FAILED",
    "cancelled": "cancelled", "awaiting_approval": "HELD", "blocked": "BLOCKED",
}


class Printer:
    def __init__(self, fmt: str) -> None:
        self.stream: IO[str] = sys.stderr if fmt == "json" else sys.stdout
        self.tty = self.stream.isatty()
        self.quiet_noops = 0
        self.closed = False  # the stream's reader went away: nothing more is printed
        self._held: list[str] = []  # lines not shown yet (see the module docstring)

    def progress(self, kind: str, task: PlannedTask | None, status: TaskStatus | None,
                 duration: float | None, note: str | None) -> None:
        if task is None:  # "idle"
            self._write([])
            return
        if kind == "started":
            if task.worker != "noop":
                self._line(f"  {'start':<10}{task.id}")
                self._write([])
            return
        assert status is not None
        if task.worker == "noop" and status.ok:
            return
        mark = _MARKS.get(status.value, status.value)
        took = f" ({duration:.2f}s)" if duration else ""
        why = f": {note}" if note and not status.ok or status is TaskStatus.SKIPPED and note else ""
        self._line(f"  {mark:<10}{task.id}{took}{why}", bad=not status.ok)
        if duration is not None:
            self._write([])

    def warning(self, text: str) -> None:
        """A warning about the run (an omen a task carries): stderr, whatever the format."""
        with contextlib.suppress(OSError):
            click.echo(f"warning: {text}", err=True)

    def _line(self, text: str, bad: bool = False) -> None:
        if self.tty and bad and not os.environ.get("NO_COLOR"):
            text = click.style(text, fg="red")
        self._held.append(text)

    def _write(self, lines: list[str]) -> None:
        """Show the held lines, then ``lines``."""
        lines, self._held = [*self._held, *lines], []
        if self.closed or not lines:
            return
        try:
            click.echo("\n".join(lines), file=self.stream)
            self.stream.flush()
        except OSError:  # EPIPE, EIO: nobody reads any more
            self.closed = True
            silence(self.stream)

    def summary(self, doc: dict[str, Any]) -> None:
        lines = self._table(doc) if self.tty else []
        counts = ", ".join(f"{n} {s}" for s, n in doc["summary"].items())
        took = f" in {doc['duration_s']:.2f}s" if doc.get("duration_s") is not None else ""
        lines.append(f"run {doc['run_id']} of {doc['mission']}: {doc['status']}{took} ({counts})")
        if doc.get("error"):
            lines.append(f"  {doc['error']}")
        held = [t["id"] for t in doc["tasks"] if t["status"] == "awaiting_approval"]
        if held:
            lines.append(f"  approve with: nexusmon approve {doc['run_id']} {shlex.quote(held[0])} "
                         f"&& nexusmon resume {doc['run_id']}")
        self._write(lines)

    def _table(self, doc: dict[str, Any]) -> list[str]:
        rows = [("task", "status", "rank", "decision", "attempts", "duration")]
        rows += [(t["id"], t["status"], t["rank"] or "-", t["decision"] or "-", str(t["attempts"]),
                  f"{t['duration_s']:.2f}s") for t in doc["tasks"]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["", *("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)]
