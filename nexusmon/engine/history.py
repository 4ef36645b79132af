"""What governance needs from the ledger, read without creating state when there is none."""

from __future__ import annotations

from pathlib import Path

from nexusmon.govern.facts import GovState, TaskHistory
from nexusmon.spec.model import RunStatus
from nexusmon.store.ledger import LEDGER_FILE, Ledger

#: Task history for scoring (trust, prediction confidence, economic value) covers this
#: many of a mission's newest finished runs: recent behaviour, read in bounded time.
HISTORY_RUNS = 50


def gov_state_from(ledger: Ledger, mission: str | None = None) -> GovState:
    """Evolution, omen counters and, for ``mission``, its tasks' recent history."""
    counts: dict[tuple[str, str], int] = {}
    for omen in ledger.omens():
        key = (omen.mission, omen.task_id)
        counts[key] = max(counts.get(key, 0), omen.count)
    histories = {} if mission is None else {
        (mission, task_id): TaskHistory(*ended)
        for task_id, ended in ledger.task_history(mission, HISTORY_RUNS).items()
    }
    return GovState(completed_missions=completed_missions(ledger), omen_counts=counts,
                    histories=histories)


def completed_missions(ledger: Ledger) -> int:
    """Successful mission runs, counted from the audit trail (`gc` prunes runs, never audit)."""
    return ledger.finished_runs(RunStatus.SUCCEEDED.value)


def gov_state(state_dir: Path, mission: str | None = None) -> GovState:
    """Evolution and omen counters (and ``mission``'s task history); empty when nothing has run yet."""
    if not (state_dir / LEDGER_FILE).is_file():
        return GovState()
    with Ledger(state_dir) as ledger:
        return gov_state_from(ledger, mission)
