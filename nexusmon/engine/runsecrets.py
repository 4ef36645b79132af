"""A run's secrets: read from the environment, masked in its stored inputs, put back on resume.

A run's inputs are stored with every secret value masked.  So that `resume` can run
with the real values, the run records where each mask stands (the n-th string of
the inputs, in a fixed walk order; the offset in the masked string; the secret's
name), never a value, and `reveal_inputs` puts the secrets' current values back.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any, Callable

from nexusmon.compile.plan import Plan
from nexusmon.errors import StateError, UsageError
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import RunRow
from nexusmon.util.masking import MASK, Masker
from nexusmon.workers.mission import inherited_secret_names

#: Audit event saying where a run's stored inputs had a secret's value masked.
MASKED_INPUTS_EVENT = "run.inputs_masked"


def read_secrets(plan: Plan, environ: Mapping[str, str]) -> dict[str, str]:
    """The mission's declared secrets by name, plus those a parent run declared to this child
    run (named in NEXUSMON_PARENT_SECRETS), so that they are masked here too."""
    missing = [name for name in plan.mission.secrets if name not in environ]
    if missing:
        raise UsageError(
            f"mission '{plan.mission.id}' declares secret(s) {', '.join(missing)} that are not set "
            "in the environment"
        )
    declared = {name: environ[name] for name in plan.mission.secrets}
    inherited = {name: environ[name] for name in inherited_secret_names(environ) if name not in declared}
    return {**declared, **inherited}


def hide_secrets(
    inputs: Mapping[str, Any], masker: Masker, secrets: Mapping[str, str],
) -> tuple[dict[str, Any], list[list[Any]]]:
    """``inputs`` with secret values masked, and where each mask stands."""
    pattern = masker.pattern
    if pattern is None:
        return dict(inputs), []
    names = {value: name for name, value in secrets.items()}
    holes: list[list[Any]] = []

    def hide(index: int, text: str) -> str:
        spans: list[list[Any]] = []
        shift = 0
        for match in pattern.finditer(text):
            spans.append([match.start() - shift, names[match.group()]])
            shift += len(match.group()) - len(MASK)
        if not spans:
            return text
        holes.append([index, spans])
        return masker.mask(text)

    hidden: dict[str, Any] = _map_strings(dict(inputs), hide)
    return hidden, holes


def present_secrets(plan: Plan, environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets of :func:`read_secrets` that ``environ`` sets, refusing none that it lacks
    (to mask text typed by someone who may not hold every secret, e.g. an operator's note)."""
    names = (*plan.mission.secrets, *inherited_secret_names(environ))
    return {name: environ[name] for name in names if name in environ}


def reveal_inputs(
    ledger: Ledger, run: RunRow, environ: Mapping[str, str], *, purpose: str = "resume it",
) -> dict[str, Any]:
    """A run's inputs with the secret values masked in the ledger filled in again from ``environ``.

    A secret it lacks is a usage error saying that it is needed to ``purpose``."""
    rows = ledger.query("SELECT payload FROM audit WHERE run_id = ? AND kind = ? ORDER BY seq LIMIT 1",
                        (run.run_id, MASKED_INPUTS_EVENT))
    if not rows:
        return dict(run.inputs)
    holes = {int(index): spans for index, spans in json.loads(rows[0][0])["holes"]}

    def reveal(index: int, text: str) -> str:
        pieces: list[str] = []
        pos = 0
        for offset, name in holes.get(index, ()):
            if text[offset:offset + len(MASK)] != MASK:
                raise StateError(f"run {run.run_id}: the masked inputs do not match their record")
            if name not in environ:
                raise UsageError(f"run {run.run_id} was given the value of secret {name} as an input; "
                                 f"set {name} in the environment to {purpose}")
            pieces += [text[pos:offset], environ[name]]
            pos = offset + len(MASK)
        return "".join(pieces) + text[pos:] if pieces else text

    revealed: dict[str, Any] = _map_strings(dict(run.inputs), reveal)
    return revealed


def _map_strings(value: Any, change: Callable[[int, str], str]) -> Any:
    """A copy of a JSON-like value with each string (keys too, numbered in walk order) changed."""
    numbers = itertools.count()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return change(next(numbers), item)
        if isinstance(item, Mapping):
            return {walk(k): walk(v) for k, v in item.items()}  # the key is walked first
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        return item

    return walk(value)
