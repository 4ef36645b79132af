"""Rows of a plan as `plan` prints them (text and JSON), secret values masked."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from msgspec import Struct

from nexusmon.compile.digest import plan_digest
from nexusmon.compile.plan import Plan
from nexusmon.engine.gates import SIGNED_CODES
from nexusmon.govern.facts import Reason, Verdict
from nexusmon.spec.model import Decision
from nexusmon.util.masking import Masker


class PlanRow(Struct, frozen=True):
    """One task as `plan` shows it: worker, rank, decision, cache state."""

    id: str
    needs: tuple[str, ...]
    worker: str
    rank: str
    decision: str
    reasons: tuple[str, ...]
    cache: str
    cache_reason: str | None
    score: dict[str, Any] | None
    digest: str
    description: str | None
    omen: str | None
    params: Mapping[str, Any]
    condition: bool | None
    signed: Reason | None = None  # the committed approval file that settles a held task

    @property
    def score_band(self) -> str:
        return str(self.score["band"]) if self.score else "-"

    @property
    def notes(self) -> list[str]:
        """Reasons worth printing under the row (quiet for plain auto tasks)."""
        notes = [] if self.decision == Decision.AUTO.value and not self.omen else list(self.reasons)
        if self.cache_reason:
            notes.append(f"cache: {self.cache_reason}")
        if self.condition is False:
            notes.append("skipped: `if` is false")
        return notes


def secrets_masker(plan: Plan, environ: Mapping[str, str] | None = None) -> Masker:
    """Masks the values of the mission's declared secrets that are set (in ``os.environ`` by default).

    An input given a secret's value is compiled into the tasks' parameters, so
    everything a plan shows goes through this.
    """
    env = os.environ if environ is None else environ
    return Masker(env[name] for name in plan.mission.secrets if env.get(name))


def plan_rows(
    plan: Plan, verdicts: Mapping[str, Verdict],
    cache: Mapping[str, tuple[str, str | None]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[PlanRow]:
    mask = secrets_masker(plan, environ).mask_value
    rows = []
    for task in plan.tasks:
        verdict = verdicts[task.id]
        state, why = (cache or {}).get(task.id, ("on" if task.cache else "off", None))
        rows.append(PlanRow(
            id=task.id, needs=task.needs, worker=task.worker, rank=verdict.rank.name,
            decision=verdict.decision.value, reasons=tuple(mask(str(r)) for r in verdict.reasons),
            cache=state, cache_reason=mask(why),
            score=verdict.score.as_json() if verdict.score else None,
            digest=plan_digest(plan.mission.id, task, verdict.rank, plan.env),
            description=mask(task.description), omen=verdict.omen_level, params=mask(task.params),
            condition=task.condition,
            signed=next((r for r in verdict.reasons if r.code in SIGNED_CODES), None),
        ))
    return rows


def plan_document(
    plan: Plan, rows: list[PlanRow], environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The plan as `plan --format json` prints it (rows come masked from :func:`plan_rows`)."""
    return {
        "mission": plan.mission.id,
        "objective": plan.mission.objective,
        "category": plan.mission.category,
        "inputs": secrets_masker(plan, environ).mask_value(dict(plan.inputs)),
        "tasks": [
            {
                "id": r.id, "needs": list(r.needs), "worker": r.worker, "rank": r.rank,
                "decision": r.decision, "reasons": list(r.reasons), "cache": r.cache,
                "cache_reason": r.cache_reason, "score": r.score, "prediction": _prediction(r),
                "omen": r.omen, "digest": r.digest, "description": r.description,
                "params": dict(r.params), "if": r.condition,
            }
            for r in rows
        ],
    }


def _prediction(row: PlanRow) -> str:
    if row.condition is False:
        return "skip"
    if row.decision == Decision.BLOCKED.value:
        return "blocked"
    if row.decision == Decision.APPROVE.value:
        if row.signed is None:
            return "hold for approval"
        if row.signed.code != "approved":
            return f"fail ({_signed_by(row.signed)})"
    if row.cache == "hit":
        return "cached"
    return f"run ({_signed_by(row.signed)})" if row.signed else "run"


def _signed_by(reason: Reason) -> str:
    """``approved by alice in approvals/x.yaml``."""
    return f"{reason.message} in {reason.location}" if reason.location else reason.message
