"""The ledger's runs, tasks and logs."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nexusmon.errors import StateError, UsageError
from nexusmon.store.audittrail import AuditTrail, EventSpec
from nexusmon.store.records import RunRow, TaskRow, dumps, text
from nexusmon.store.sqlite import insert_sql, select_sql, upsert_sql


class AmbiguousRun(UsageError):
    """A run id prefix matches more than one run."""


class RunTables(AuditTrail):
    """The ledger's run, task and log methods (task rows are saved with their audit events)."""

    # ---------------------------------------------------------- runs

    def create_run(self, run: RunRow) -> None:
        """Record a new run; its id must be new."""
        try:
            with self.transaction():
                self.execute(insert_sql("runs", RunRow.COLUMNS), run.params())
        except sqlite3.IntegrityError as exc:
            raise StateError(f"run {run.run_id} already exists in {self.path}") from exc

    def update_run(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: float | None = None,
        error: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Set a run's status, end time and error (None clears them, e.g. on resume), and
        its options when given."""
        with self.transaction():
            changed = self.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
                (text(status), finished_at, error, run_id),
            )
            if options is not None:
                self.execute("UPDATE runs SET options = ? WHERE run_id = ?",
                             (dumps(dict(options)), run_id))
        if not changed:
            raise StateError(f"no run {run_id} in {self.path}")

    def get_run(self, ref: str) -> RunRow | None:
        """The run named by an exact id, ``last`` or a unique id prefix.

        ``last`` is the newest run started by a user, not a child run a ``mission`` task started.
        """
        base = select_sql(RunRow.COLUMNS, "runs")
        if ref == "last":
            rows = self.query(f"{base} WHERE parent_run_id IS NULL ORDER BY run_id DESC LIMIT 1") or self.query(
                f"{base} ORDER BY run_id DESC LIMIT 1")
        else:
            rows = self.query(f"{base} WHERE run_id = ?", (ref,)) or self.query(
                f"{base} WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 6", (len(ref), ref)
            )
        if len(rows) > 1:
            shown = ", ".join(row[0] for row in rows[:5])
            raise AmbiguousRun(f"run id prefix '{ref}' matches several runs: {shown}")
        return RunRow.from_row(rows[0]) if rows else None

    def list_runs(self, limit: int = 50, mission: str | None = None) -> list[RunRow]:
        """Newest runs first, optionally of one mission."""
        where, params = ("WHERE mission = ?", [mission]) if mission else ("", [])
        rows = self.query(
            f"{select_sql(RunRow.COLUMNS, 'runs')} {where} ORDER BY run_id DESC LIMIT ?", [*params, limit]
        )
        return [RunRow.from_row(row) for row in rows]

    def child_run(self, parent_run_id: str, parent_task_id: str, mission: str) -> RunRow | None:
        """The newest run of ``mission`` that task ``parent_task_id`` of run ``parent_run_id`` started."""
        rows = self.query(
            f"{select_sql(RunRow.COLUMNS, 'runs')} WHERE parent_run_id = ? AND parent_task_id = ? "
            "AND mission = ? ORDER BY run_id DESC LIMIT 1", (parent_run_id, parent_task_id, mission))
        return RunRow.from_row(rows[0]) if rows else None

    def count_runs(self, status: str) -> int:
        """How many runs ended with ``status`` (e.g. succeeded runs, for evolution XP)."""
        rows = self.query("SELECT count(*) FROM runs WHERE status = ?", (text(status),))
        return int(rows[0][0])

    def task_history(self, mission: str, last_runs: int) -> dict[str, tuple[int, int, int]]:
        """Per task of ``mission``, over its newest ``last_runs`` finished runs: how often it
        ended (succeeded, failed or cached), how often failed, how often cached."""
        rows = self.query(
            "SELECT t.task_id, count(*), sum(t.status = 'failed'), sum(t.status = 'cached') "
            "FROM tasks t JOIN (SELECT run_id FROM runs WHERE mission = ? AND status != 'running' "
            "ORDER BY run_id DESC LIMIT ?) r ON t.run_id = r.run_id "
            "WHERE t.status IN ('succeeded', 'failed', 'cached') GROUP BY t.task_id",
            (mission, last_runs),
        )
        return {task_id: (int(runs), int(failed), int(cached)) for task_id, runs, failed, cached in rows}

    # ---------------------------------------------------------- tasks and logs

    def save_tasks(
        self, rows: Sequence[TaskRow | Mapping[str, Any]], events: Sequence[EventSpec] = (),
    ) -> None:
        """Upsert task rows (records, or mappings of their fields) and append audit events
        happening now, all in one transaction."""
        sql = upsert_sql("tasks", TaskRow.COLUMNS, ("run_id", "task_id"))
        params = [r.params() if isinstance(r, TaskRow) else TaskRow.params_of(r) for r in rows]
        with self.transaction():
            self._write_batches()
            self._sql.executemany(sql, params)
            if events:
                now = time.time()
                self._append_events([(now, *spec) for spec in events])

    def task_rows(self, run_id: str) -> list[TaskRow]:
        """The tasks of a run, in the order they were first saved."""
        rows = self.query(f"{select_sql(TaskRow.COLUMNS, 'tasks')} WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [TaskRow.from_row(row) for row in rows]

    def append_log(self, run_id: str, task_id: str, attempt: int, text: str) -> None:
        """Add captured output of one attempt (several calls per attempt append)."""
        with self.transaction():
            self.execute(
                "INSERT INTO logs (run_id, task_id, attempt, text) VALUES (?, ?, ?, ?)",
                (run_id, task_id, attempt, text),
            )

    def logs(self, run_id: str, task_id: str) -> str:
        """A task's captured output; with several attempts, each starts with a header line."""
        rows = self.query(
            "SELECT attempt, text FROM logs WHERE run_id = ? AND task_id = ? "
            "ORDER BY attempt, rowid",
            (run_id, task_id),
        )
        by_attempt: dict[int, str] = {}
        for attempt, chunk in rows:
            by_attempt[attempt] = by_attempt.get(attempt, "") + chunk
        if len(by_attempt) <= 1:
            return "".join(by_attempt.values())
        return "".join(
            f"--- attempt {attempt} ---\n{_line_ended(out)}" for attempt, out in by_attempt.items()
        )


def _line_ended(text: str) -> str:
    return text if text.endswith("\n") or not text else text + "\n"
