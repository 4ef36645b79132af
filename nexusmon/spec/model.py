"""Typed, immutable records for workspace files (parsed, not yet compiled or evaluated)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct

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
    def parse(cls, text: str) -> Rank:
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


class Located(Struct, frozen=True):
    """Mixin: a record that knows the document and JSON path it came from."""

    doc: Document
    at: JsonPath

    def loc(self, *sub: str | int) -> Location:
        """Location of a sub-key of this record (falls back to the nearest parent)."""
        return self.doc.locate(self.at + tuple(sub))

    def line_loc(self, line: int | None, *sub: str | int) -> Location:
        """Location of line ``line`` of a sub-key's text (see :meth:`Document.locate_line`)."""
        return self.doc.locate_line(self.at + tuple(sub), line)

    def key_loc(self, *sub: str | int) -> Location:
        """Location of the key itself (the `name:` part) rather than its value."""
        return self.doc.locate_key(self.at + tuple(sub))


class InputSpec(Located, frozen=True):
    """One declared mission input: its type, default and whether it is required."""

    name: str
    type: str  # string | integer | number | boolean | array | object
    default: Any
    has_default: bool
    enum: tuple[Any, ...] | None
    description: str | None


class TaskSpec(Located, frozen=True):
    """One task as written in a mission or rune, before compilation."""

    id: str
    run: str | None
    worker: str | None
    uses: str | None
    with_: Mapping[str, Any]
    needs: tuple[str, ...]
    if_: str | None
    rank: Rank | None
    timeout: float | None
    retries: int
    retry_delay: float
    env: Mapping[str, str]
    sources: tuple[str, ...]
    artifacts: tuple[str, ...]
    cache: bool | None
    matrix: tuple[tuple[str, tuple[Any, ...]], ...]
    description: str | None

    @property
    def worker_name(self) -> str:
        """The worker that executes this task (`run` is the shell worker)."""
        if self.run is not None:
            return "shell"
        return self.worker or ""


class Constraints(Struct, frozen=True):
    """A mission's limits: time, steps, cost and concurrency."""

    max_time_seconds: float | None = None
    max_steps: int | None = None
    max_cost_usd: float | None = None
    concurrency: int | None = None


class Mission(Located, frozen=True):
    """A mission file: objective, inputs, env, secrets, constraints and tasks."""

    id: str
    objective: str
    category: str
    rank: Rank
    inputs: tuple[InputSpec, ...]
    env: Mapping[str, str]
    secrets: tuple[str, ...]
    constraints: Constraints
    tasks: tuple[TaskSpec, ...]

    @property
    def path(self) -> str:
        return self.doc.path

    @property
    def digest(self) -> str:
        return self.doc.digest


class Rune(Located, frozen=True):
    """A reusable task template with its own inputs, tasks and outputs."""

    name: str
    version: int
    description: str | None
    inputs: tuple[InputSpec, ...]
    tasks: tuple[TaskSpec, ...]
    outputs: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class RuleWhen(Struct, frozen=True):
    """What a policy rule matches; every key given must match."""

    mission: str | None = None
    task: str | None = None
    uses: str | None = None
    category: str | None = None
    worker: tuple[str, ...] | None = None
    rank_at_least: Rank | None = None
    run_matches: str | None = None
    has_secrets: bool | None = None


class RuleThen(Struct, frozen=True):
    """What a matching rule does: raise the rank, require capabilities, deny, gate."""

    rank: Rank | None = None
    require_capabilities: tuple[str, ...] = ()
    deny: str | None = None
    approvers: tuple[str, ...] = ()


class Rule(Located, frozen=True):
    """One policy rule: `when` it applies, `then` what it does."""

    id: str
    when: RuleWhen
    then: RuleThen
    policy: str


class Operator(Located, frozen=True):
    """A person who may approve ranks, with the public key that signs for them."""

    name: str
    public_key: str
    may_approve: tuple[Rank, ...]


class PolicyTest(Located, frozen=True):
    """A policy's own test case: a task's facts and the decision expected."""

    name: str
    task: Mapping[str, Any]
    expect: Mapping[str, Any]


class OmenThresholds(Struct, frozen=True):
    """Repeated-failure counts at which an omen warns, intervenes and locks."""

    warn: int = 3
    intervene: int = 7
    lock: int = 13


class Policy(Located, frozen=True):
    """A policy file: rules, gates, operators, omens, scoring, evolution and tests."""

    name: str
    rules: tuple[Rule, ...]
    gates: Mapping[Rank, Decision] | None
    omens: OmenThresholds | None
    scoring: Mapping[str, Any] | None
    evolution: Mapping[str, Any] | None
    operators: tuple[Operator, ...]
    tests: tuple[PolicyTest, ...]


class Settings(Struct, frozen=True):
    """`nexusmon.yaml` at the workspace root."""

    state_dir: str | None = None
    concurrency: int | None = None


class Workspace(Struct, frozen=True):
    """Everything loaded from one workspace: missions, runes, policies, settings."""

    root: Path
    missions: tuple[Mission, ...]
    runes: tuple[Rune, ...]
    policies: tuple[Policy, ...]
    settings: Settings
    plugin_files: tuple[Path, ...]
    broken_runes: tuple[str, ...] = ()  # names of rune files that failed to load (reported there)

    def mission(self, mission_id: str) -> Mission | None:
        return next((m for m in self.missions if m.id == mission_id), None)

    def rune(self, name: str, version: int | None) -> Rune | None:
        found = [r for r in self.runes if r.name == name]
        if version is None:
            return max(found, key=lambda r: r.version, default=None)
        return next((r for r in found if r.version == version), None)
