"""Batched, masked writes of task state and audit events to the ledger.

Task rows and their audit events go to the ledger in one transaction per
batch; a batch is flushed when it holds many events, when it is old, when a task that
ran a worker settles (see engine.hooks) and always before the run ends. A
crash loses at most the unflushed batch: tasks that ran nothing (cached,
skipped, noop), which `resume` settles again at no cost.

Each event is stamped when it happens, not when its batch is written, and the
ledger writes the batch before any record appended directly (the vault's
`artifact.stored`), so the audit chain keeps the order events happened in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Optional

from nexusmon.store.ledger import Ledger
from nexusmon.store.records import TaskRow
from nexusmon.util.masking import Masker

# Counted in events, not rows: the rows of a plan, queued up front, would otherwise make the
# first batches write every pending row again as soon as a task settles.
FLUSH_EVENTS = 2000
FLUSH_SECONDS = 0.25

#: (at, kind, run_id, task_id, payload): an audit event stamped when it happened.
Event = tuple[float, str, Optional[str], Optional[str], dict[str, Any]]


class Recorder:
    def __init__(self, ledger: Ledger, run_id: str, mission: str, masker: Masker) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.mission = mission
        self.masker = masker
        self._rows: dict[str, dict[str, Any]] = {}  # task id -> TaskRow fields (cheap to update)
        self._dirty: dict[str, None] = {}  # insertion-ordered: rows keep plan order
        self._events: list[Event] = []
        self._logs: list[tuple[str, int, str]] = []
        self._last_flush = time.monotonic()
        self._planned = False  # rows queued by plan() and not written yet
        # The ledger may write the batch from any thread that appends to it.
        self._lock = threading.Lock()
        ledger.add_batch(self._write)

    def seed(self, rows: Mapping[str, TaskRow]) -> None:
        """Start from rows already in the ledger (resume)."""
        with self._lock:
            for task_id, row in rows.items():
                self._rows[task_id] = {name: getattr(row, name) for name in TaskRow.COLUMNS}

    def plan(self, task_id: str, **fields: Any) -> None:
        """Queue a task's first row (written with the next batch, or by :meth:`flush_plan`)."""
        with self._lock:
            self._rows[task_id] = {"run_id": self.run_id, "task_id": task_id, **fields}
            self._dirty[task_id] = None
            self._planned = True

    def flush_plan(self) -> None:
        """Write the rows queued by :meth:`plan` if no batch has written them yet."""
        if self._planned:
            self.flush()

    def update(self, task_id: str, event: str | None = None, payload: dict[str, Any] | None = None,
               **fields: Any) -> None:
        """Change a task's row, and queue the audit event ``event`` about it (stamped now)."""
        with self._lock:
            row = self._rows.get(task_id)
            if row is None:
                row = self._rows[task_id] = {"run_id": self.run_id, "task_id": task_id, "status": "pending"}
            row.update(fields)
            self._dirty[task_id] = None
            if event is not None:
                body = {"mission": self.mission, "status": row["status"], **(payload or {})}
                self._queue(event, body, task_id)
        self.maybe_flush()

    def event(self, kind: str, payload: dict[str, Any], task_id: str | None = None) -> None:
        """Queue an audit event, stamped now."""
        with self._lock:
            self._queue(kind, payload, task_id)

    def _queue(self, kind: str, payload: dict[str, Any], task_id: str | None) -> None:
        self._events.append((time.time(), kind, self.run_id, task_id, self.masker.mask_value(payload)))

    def end_running(self, status: str, error: str) -> None:
        """Settle every task still `running` (the run itself ended: a crash, Ctrl-C)."""
        with self._lock:
            for task_id, row in self._rows.items():
                if row.get("status") == "running":
                    row.update(status=status, error=error, finished_at=time.time())
                    self._dirty[task_id] = None
                    self._queue(f"task.{status}", {"mission": self.mission, "status": status,
                                                    "note": error}, task_id)

    def log(self, task_id: str, attempt: int, text: str) -> None:
        with self._lock:
            self._logs.append((task_id, attempt, text))

    def maybe_flush(self) -> None:
        if len(self._events) >= FLUSH_EVENTS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the batch now (through the ledger, which writes every batch it holds)."""
        if self._dirty or self._events or self._logs:
            self.ledger.write_batches()

    def _write(self) -> None:
        """Write the batch in the ledger's current transaction (the ledger calls this)."""
        with self._lock:
            if not (self._dirty or self._events or self._logs):
                return
            rows = [self._row(task_id) for task_id in self._dirty]
            self.ledger.save_tasks(rows)
            self.ledger.append_events(self._events)
            for task_id, attempt, text in self._logs:
                self.ledger.append_log(self.run_id, task_id, attempt, text)
            self._dirty = {}
            self._events = []
            self._logs = []
            self._planned = False
            self._last_flush = time.monotonic()

    def _row(self, task_id: str) -> dict[str, Any]:
        fields = self._rows[task_id]
        error = fields.get("error")
        return {**fields, "error": self.masker.mask(error) if error else error}
