"""Typed, immutable records for workspace files (parsed, not yet compiled or evaluated)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from nexusmon.errors import Location
from nexusmon.spec.document import Document, JsonPath


class Rank(enum.IntEnum):
    """Risk ranks, lowest to highest."""

    E = 0
    D = 1
    C = 2
    B = 3
    A = 4
    S = 5

    @classmethod
    def parse(cls, text: str) -> "Rank":
        return cls[text]


class Decision(str, enum.Enum):
    AUTO = "auto"
    REVIEW = "review"
    APPROVE = "approve"
    BLOCKED = "blocked"


class TaskStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CACHED = "cached"
    CANCELLED = "cancelled"
    AWAITING_APPROVAL = "awaiting_approval"
    BLOCKED = "blocked"

    @property
    def ok(self) -> bool:
        """True when dependents may proceed."""
        return self in (TaskStatus.SUCCEEDED, TaskStatus.CACHED, TaskStatus.SKIPPED)


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AWAITING_APPROVAL = "awaiting_approval"
    BLOCKED = "blocked"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Located:
    """Mixin: a record that knows the document and JSON path it came from."""

    doc: Document = field(repr=False, compare=False)
    at: JsonPath = field(repr=False, compare=False)

    def loc(self, *sub: str | int) -> Location:
        """Location of a sub-key of this record (falls back to the nearest parent)."""
        return self.doc.locate(self.at + tuple(sub))

    def key_loc(self, *sub: str | int) -> Location:
        """Location of the key itself (the `name:` part) rather than its value."""
        return self.doc.locate_key(self.at + tuple(sub))


@dataclass(frozen=True)
class InputSpec(Located):
    name: str
    type: str  # string | integer | number | boolean | array | object
    default: Any
    has_default: bool
    enum: Optional[Tuple[Any, ...]]
    description: Optional[str]


@dataclass(frozen=True)
class TaskSpec(Located):
    id: str
    run: Optional[str]
    worker: Optional[str]
    uses: Optional[str]
    with_: Mapping[str, Any]
    needs: Tuple[str, ...]
    if_: Optional[str]
    rank: Optional[Rank]
    timeout: Optional[float]
    retries: int
    retry_delay: float
    env: Mapping[str, str]
    sources: Tuple[str, ...]
    artifacts: Tuple[str, ...]
    cache: Optional[bool]
    matrix: Tuple[Tuple[str, Tuple[Any, ...]], ...]
    description: Optional[str]

    @property
    def worker_name(self) -> str:
        """The worker that executes this task (`run` is the shell worker)."""
        if self.run is not None:
            return "shell"
        return self.worker or ""


@dataclass(frozen=True)
class Constraints:
    max_time_seconds: Optional[float] = None
    max_steps: Optional[int] = None
    max_cost_usd: Optional[float] = None
    concurrency: Optional[int] = None


@dataclass(frozen=True)
class Mission(Located):
    id: str
    objective: str
    category: str
    rank: Rank
    inputs: Tuple[InputSpec, ...]
    env: Mapping[str, str]
    secrets: Tuple[str, ...]
    constraints: Constraints
    tasks: Tuple[TaskSpec, ...]

    @property
    def path(self) -> str:
        return self.doc.path

    @property
    def digest(self) -> str:
        return self.doc.digest


@dataclass(frozen=True)
class Rune(Located):
    name: str
    version: int
    description: Optional[str]
    inputs: Tuple[InputSpec, ...]
    tasks: Tuple[TaskSpec, ...]
    outputs: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class RuleWhen:
    mission: Optional[str] = None
    task: Optional[str] = None
    uses: Optional[str] = None
    category: Optional[str] = None
    worker: Optional[Tuple[str, ...]] = None
    rank_at_least: Optional[Rank] = None
    run_matches: Optional[str] = None
    has_secrets: Optional[bool] = None


@dataclass(frozen=True)
class RuleThen:
    rank: Optional[Rank] = None
    require_capabilities: Tuple[str, ...] = ()
    deny: Optional[str] = None
    approvers: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule(Located):
    id: str
    when: RuleWhen
    then: RuleThen
    policy: str


@dataclass(frozen=True)
class Operator(Located):
    name: str
    public_key: str
    may_approve: Tuple[Rank, ...]


@dataclass(frozen=True)
class PolicyTest(Located):
    name: str
    task: Mapping[str, Any]
    expect: Mapping[str, Any]


@dataclass(frozen=True)
class OmenThresholds:
    warn: int = 3
    intervene: int = 7
    lock: int = 13


@dataclass(frozen=True)
class Policy(Located):
    name: str
    rules: Tuple[Rule, ...]
    gates: Optional[Mapping[Rank, Decision]]
    omens: Optional[OmenThresholds]
    scoring: Optional[Mapping[str, Any]]
    evolution: Optional[Mapping[str, Any]]
    operators: Tuple[Operator, ...]
    tests: Tuple[PolicyTest, ...]


@dataclass(frozen=True)
class Settings:
    """`nexusmon.yaml` at the workspace root."""

    state_dir: Optional[str] = None
    concurrency: Optional[int] = None


@dataclass(frozen=True)
class Workspace:
    root: Path
    missions: Tuple[Mission, ...]
    runes: Tuple[Rune, ...]
    policies: Tuple[Policy, ...]
    settings: Settings
    plugin_files: Tuple[Path, ...]
    broken_runes: Tuple[str, ...] = ()  # names of rune files that failed to load (reported there)

    def mission(self, mission_id: str) -> Optional[Mission]:
        return next((m for m in self.missions if m.id == mission_id), None)

    def rune(self, name: str, version: Optional[int]) -> Optional[Rune]:
        found = [r for r in self.runes if r.name == name]
        if version is None:
            return max(found, key=lambda r: r.version, default=None)
        return next((r for r in found if r.version == version), None)
