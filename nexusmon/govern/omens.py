"""Omens: what repeated failures of one (mission, task) lead to.

The ledger counts failures per (mission, task, failure kind); governance sees
the highest count over kinds. At ``warn`` plan and run print a warning, at
``intervene`` the task needs approval, at ``lock`` it is blocked until
``nexusmon omens clear``.
"""

from __future__ import annotations

from nexusmon.spec.model import OmenThresholds

WARN = "warn"
INTERVENE = "intervene"
LOCK = "lock"


def omen_level(count: int, thresholds: OmenThresholds) -> str | None:
    """The highest threshold ``count`` reaches: None, "warn", "intervene" or "lock"."""
    if count >= thresholds.lock:
        return LOCK
    if count >= thresholds.intervene:
        return INTERVENE
    if count >= thresholds.warn:
        return WARN
    return None
