"""Plain facts governance decides on, and the verdict it returns.

Evaluation never looks at YAML or at the compiler's records: the compiler turns
each planned task into a :class:`TaskFacts`, the ledger supplies a
:class:`GovState`, and :func:`nexusmon.govern.evaluate.evaluate` returns a
:class:`Verdict`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from nexusmon.errors import Location
from nexusmon.spec.model import Decision, Rank


class TaskFacts(Struct, frozen=True):
    """What policy may know about one planned (rendered, expanded) task."""

    mission: str
    task: str
    category: str
    uses: str | None  # rune ref "name@version" when the task came from a rune call
    worker: str
    base_rank: Rank  # max(mission floor, task's own rank)
    worker_risk: Rank  # the worker's risk_level
    worker_capabilities: tuple[str, ...] = ()
    worker_requires_approval: bool = False
    text: str = ""  # rendered script (shell) or params_text(params): what run_matches searches
    has_secrets: bool = False
    matrix_size: int = 1  # expansions of the task's matrix (1 when none)
    raw_interpolation: bool = False  # the script used the explicit `raw` filter
    declared_rank: Rank | None = None  # the rank the task or mission wrote


class TaskHistory(Struct, frozen=True):
    """How a task's recent runs ended: runs (succeeded, failed or cached), failures, cache hits."""

    runs: int = 0
    failures: int = 0
    cached: int = 0


class GovState(Struct, frozen=True):
    """What the ledger knows.

    ``omen_counts`` covers every task; the history fields describe the task
    being evaluated (:meth:`for_task` builds that state from ``histories``).
    """

    completed_missions: int = 0  # successful mission runs so far
    omen_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    cache_hit_rate: float | None = None
    history_runs: int = 0
    history_failures: int = 0
    histories: Mapping[tuple[str, str], TaskHistory] = field(default_factory=dict)  # (mission, task)

    def omen_count(self, mission: str, task: str) -> int:
        return self.omen_counts.get((mission, task), 0)

    def for_task(self, mission: str, task: str) -> GovState:
        """This state with the history fields of one task (unchanged when it has none)."""
        history = self.histories.get((mission, task))
        if history is None or history.runs <= 0:
            return self
        return replace(self, history_runs=history.runs, history_failures=history.failures,
                       cache_hit_rate=history.cached / history.runs)


class Reason(Struct, frozen=True):
    """One step of a decision; ``str()`` is the one-line form shown to users."""

    code: str  # rank | gate | deny | capability | omen | approval | score | raw | approvers
    message: str
    rule: str | None = None
    location: str | None = None  # "policies/p.yaml:12"

    def __str__(self) -> str:
        return f"{self.message} ({self.location})" if self.location else self.message


class Score(Struct, frozen=True):
    """Six axes 0-100 (higher is better), their weighted total and its band."""

    axes: Mapping[str, int]
    total: int
    band: str  # SAFE | BORDERLINE | FAILING

    def as_json(self) -> dict[str, Any]:
        return {"axes": dict(self.axes), "total": self.total, "band": self.band}


class Verdict(Struct, frozen=True):
    """What governance decided for one task."""

    rank: Rank
    decision: Decision
    reasons: tuple[Reason, ...]
    score: Score | None
    omen_level: str | None  # None | warn | intervene | lock
    required_capabilities: tuple[str, ...]
    approvers: tuple[str, ...]  # operators named by matching rules' `approvers`

    def as_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank.name,
            "decision": self.decision.value,
            "reasons": [str(r) for r in self.reasons],
            "score": self.score.as_json() if self.score else None,
            "omen": self.omen_level,
            "required_capabilities": list(self.required_capabilities),
            "approvers": list(self.approvers),
        }


def params_text(params: Mapping[str, Any]) -> str:
    """Canonical JSON of rendered parameters: the text `run_matches` searches for non-shell tasks."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def short_location(location: Location) -> str:
    """`path:line`, the form reasons use."""
    return f"{location.path}:{location.line}"
