"""Plan digests: the canonical hash an approval signs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from nexusmon.compile.plan import PlannedTask
from nexusmon.spec.model import Rank

_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode  # built once: json.dumps builds an encoder per call that passes options


def canonical_json(value: Any) -> str:
    return _CANONICAL(value)


def plan_digest(mission: str, task: PlannedTask, rank: Rank, env: Mapping[str, str]) -> str:
    """Hash of mission id, task id, worker, rendered parameters and environment
    (secrets by name: see compile.context), condition and effective rank."""
    body = {
        "mission": mission,
        "task": task.id,
        "worker": task.worker,
        "params": task.params,
        "env": dict(env, **task.env),
        "if": task.spec.if_,
        "rank": rank.name,
    }
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()
