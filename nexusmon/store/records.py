"""Immutable records for ledger rows, and their conversion to and from SQLite values.

Each record lists its columns in ``COLUMNS`` (the record's field order, which
is also the table's column order in SELECTs); ``from_row`` decodes the JSON
columns of a row and ``params`` encodes a record for INSERT.  Statuses, ranks
and decisions are stored as their text values (``"succeeded"``, ``"D"``,
``"auto"``) so the database reads well in sqlite-utils or Datasette.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from msgspec import Struct, field
from msgspec.structs import asdict

Row = Sequence[Any]


_COLUMN = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def dumps(value: Any) -> str:
    """Compact JSON for a JSON column (values JSON cannot express are stored as text)."""
    if not value and type(value) in _EMPTY:  # most rows: no reasons, outputs or artifacts
        return _EMPTY[type(value)]
    return _COLUMN(value)


_EMPTY: dict[type, str] = {list: "[]", dict: "{}"}


_DECODE = msgspec.json.Decoder().decode


def loads(text: str | None, empty: Any) -> Any:
    """Decode a JSON column; ``empty`` when the column is NULL.

    msgspec decodes the run's rows several times faster than the json module; the
    json module reads what msgspec refuses (NaN written by an older version).
    """
    if text is None:
        return empty
    try:
        return _DECODE(text)
    except msgspec.DecodeError:
        return json.loads(text)


def text(value: Any) -> str | None:
    """A status, rank or decision as stored: enums by value (ranks by letter)."""
    if value is None:
        return None
    if isinstance(value, enum.IntEnum):
        return value.name
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


class RunRow(Struct, frozen=True):
    """One mission run (table ``runs``)."""

    run_id: str
    mission: str
    status: str
    started_at: float
    mission_file: str | None = None
    mission_digest: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    parent_run_id: str | None = None
    parent_task_id: str | None = None
    finished_at: float | None = None
    error: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # keep_going, use_cache, concurrency

    COLUMNS = (
        "run_id", "mission", "status", "started_at", "mission_file", "mission_digest",
        "inputs", "git_commit", "parent_run_id", "parent_task_id", "finished_at", "error", "options",
    )

    @classmethod
    def from_row(cls, row: Row) -> RunRow:
        values = list(row)
        values[6] = loads(values[6], {})
        values[12] = loads(values[12], {})
        return cls(*values)

    def params(self) -> tuple[Any, ...]:
        return (
            self.run_id, self.mission, text(self.status), self.started_at, self.mission_file,
            self.mission_digest, dumps(dict(self.inputs)), self.git_commit, self.parent_run_id,
            self.parent_task_id, self.finished_at, self.error, dumps(dict(self.options)),
        )


class TaskRow(Struct, frozen=True):
    """The latest state of one task of a run (table ``tasks``).

    ``artifacts`` holds ``{"path", "version", "digest"}`` objects, as in run JSON.
    """

    run_id: str
    task_id: str
    status: str
    rank: str | None = None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    cpu_s: float | None = None
    peak_rss_kb: int | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    artifacts: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None
    failure_kind: str | None = None
    fingerprint: str | None = None
    plan_digest: str | None = None
    cost_usd: float | None = None

    COLUMNS = (
        "run_id", "task_id", "status", "rank", "decision", "reasons", "attempts", "started_at",
        "finished_at", "duration_s", "cpu_s", "peak_rss_kb", "outputs", "artifacts", "error",
        "failure_kind", "fingerprint", "plan_digest", "cost_usd",
    )

    @classmethod
    def from_row(cls, row: Row) -> TaskRow:
        values = list(row)
        values[5] = tuple(loads(values[5], []))
        values[12] = loads(values[12], {})
        values[13] = tuple(loads(values[13], []))
        return cls(*values)

    def params(self) -> tuple[Any, ...]:
        return TaskRow.params_of(asdict(self))

    @staticmethod
    def params_of(values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The SQL parameters of a row given as a mapping of its fields (missing: defaults).

        The run recorder keeps rows as plain dicts; this spares it building a TaskRow
        per row written.
        """
        get = values.get
        return (
            values["run_id"], values["task_id"], text(values["status"]), text(get("rank")),
            text(get("decision")), dumps(list(get("reasons", ()))), get("attempts", 0),
            get("started_at"), get("finished_at"), get("duration_s"), get("cpu_s"),
            get("peak_rss_kb"), dumps(dict(get("outputs", {}))),
            dumps([dict(a) for a in get("artifacts", ())]), get("error"), get("failure_kind"),
            get("fingerprint"), get("plan_digest"), get("cost_usd"),
        )


class CacheRow(Struct, frozen=True):
    """Outputs and artifacts of a task run, keyed by its fingerprint (table ``cache``).

    ``parts`` is what went into the fingerprint, so a later miss can say what changed.
    """

    fingerprint: str
    mission: str
    task_id: str
    run_id: str
    outputs: Mapping[str, Any]
    artifacts: tuple[Mapping[str, Any], ...]
    created_at: float
    parts: Mapping[str, Any] = field(default_factory=dict)

    COLUMNS = ("fingerprint", "mission", "task_id", "run_id", "outputs", "artifacts", "created_at", "parts")

    @classmethod
    def from_row(cls, row: Row) -> CacheRow:
        fp, mission, task_id, run_id, outputs, artifacts, created_at, parts = row
        return cls(
            fp, mission, task_id, run_id, loads(outputs, {}), tuple(loads(artifacts, [])),
            created_at, loads(parts, {}),
        )

    def params(self) -> tuple[Any, ...]:
        return (
            self.fingerprint, self.mission, self.task_id, self.run_id, dumps(dict(self.outputs)),
            dumps([dict(a) for a in self.artifacts]), self.created_at, dumps(dict(self.parts)),
        )


class ArtifactVersion(Struct, frozen=True):
    """One stored version of a workspace file (table ``artifacts``).

    ``digest`` is ``"sha256:<hex>"``; ``review`` is the latest verdict or None.
    """

    path: str
    version: int
    digest: str
    size: int
    run_id: str | None
    task_id: str | None
    created_at: float
    lineage: dict[str, Any]
    review: str | None = None

    COLUMNS = (
        "path", "version", "digest", "size", "run_id", "task_id", "created_at", "lineage",
        "review",
    )

    @classmethod
    def from_row(cls, row: Row) -> ArtifactVersion:
        values = list(row)
        values[7] = loads(values[7], {})
        return cls(*values)

    def params(self) -> tuple[Any, ...]:
        return (
            self.path, self.version, self.digest, self.size, self.run_id, self.task_id,
            self.created_at, dumps(self.lineage), self.review,
        )

    @property
    def ref(self) -> str:
        """``path@vN``, the form users type."""
        return f"{self.path}@v{self.version}"

    @property
    def hexdigest(self) -> str:
        return self.digest.split(":", 1)[-1]

    def as_json(self) -> dict[str, Any]:
        """The ``{path, version, digest}`` object run JSON lists under a task's artifacts."""
        return {"path": self.path, "version": self.version, "digest": self.digest}


class ReviewRow(Struct, frozen=True):
    """One operator verdict on an artifact version (table ``reviews``)."""

    path: str
    version: int
    verdict: str
    note: str | None
    operator: str | None
    at: float

    COLUMNS = ("path", "version", "verdict", "note", "operator", "at")


class ApprovalRow(Struct, frozen=True):
    """A signed operator verdict on a task's plan digest (table ``approvals``).

    The fields are exactly what the operator signed (see govern.approvals), so a
    stored approval can be verified again at any time.
    """

    run_id: str
    task_id: str
    mission: str
    plan_digest: str
    verdict: str
    operator: str
    public_key: str
    rank: str
    signature: str
    at: str  # ISO 8601 UTC, as signed
    note: str | None = None
    id: int | None = None  # assigned by the ledger

    COLUMNS = (
        "run_id", "task_id", "mission", "plan_digest", "verdict", "operator", "public_key",
        "rank", "signature", "at", "note", "id",
    )

    @classmethod
    def from_row(cls, row: Row) -> ApprovalRow:
        return cls(*row)

    def params(self) -> tuple[Any, ...]:
        return (
            self.run_id, self.task_id, self.mission, self.plan_digest, text(self.verdict),
            self.operator, self.public_key, text(self.rank), self.signature, self.at, self.note,
        )


class OmenRow(Struct, frozen=True):
    """How often a task of a mission failed in one way (table ``omens``)."""

    mission: str
    task_id: str
    kind: str
    count: int
    last_at: float

    COLUMNS = ("mission", "task_id", "kind", "count", "last_at")


class AuditEvent(Struct, frozen=True):
    """One record of the hash-chained audit trail (table ``audit``)."""

    seq: int
    at: float
    kind: str
    run_id: str | None
    task_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    COLUMNS = ("seq", "at", "kind", "run_id", "task_id", "payload", "prev_hash", "hash")

    @classmethod
    def from_row(cls, row: Row) -> AuditEvent:
        values = list(row)
        values[5] = loads(values[5], {})
        return cls(*values)
