"""What governance needs from the ledger, read without creating state when there is none."""

from __future__ import annotations

from pathlib import Path

from nexusmon.govern.facts import GovState
from nexusmon.spec.model import RunStatus
from nexusmon.store.ledger import LEDGER_FILE, Ledger


def gov_state_from(ledger: Ledger) -> GovState:
    counts: dict[tuple[str, str], int] = {}
    for omen in ledger.omens():
        key = (omen.mission, omen.task_id)
        counts[key] = max(counts.get(key, 0), omen.count)
    return GovState(completed_missions=completed_missions(ledger), omen_counts=counts)


def completed_missions(ledger: Ledger) -> int:
    """Successful mission runs, counted from the audit trail (`gc` prunes runs, never audit)."""
    return ledger.finished_runs(RunStatus.SUCCEEDED.value)


def gov_state(state_dir: Path) -> GovState:
    """Evolution and omen counters; empty when nothing has run yet."""
    if not (state_dir / LEDGER_FILE).is_file():
        return GovState()
    with Ledger(state_dir) as ledger:
        return gov_state_from(ledger)
