"""The worker contract: what a worker receives, what it returns, how it is described.

Built-in workers and plugins implement the same protocol and register through
the same registry (see :mod:`nexusmon.workers.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from msgspec import Struct, field


class Task(Struct, frozen=True):
    """One attempt of one task, fully rendered, as a worker sees it."""

    id: str
    mission: str
    run_id: str
    worker: str
    params: Mapping[str, Any]  # rendered `with` (the shell worker gets {"run": script})
    env: Mapping[str, str]  # complete process environment for subprocesses
    cwd: Path  # working directory (inside the workspace)
    workspace: Path
    timeout: float | None = None  # seconds for this attempt; the worker enforces it
    secrets: tuple[str, ...] = ()  # secret values: never to appear in outputs or logs
    output_file: Path | None = None  # $NEXUSMON_OUTPUT for this attempt
    attempt: int = 1
    on_output: Callable[[str], None] | None = None  # live log lines


class Result(Struct, frozen=True):
    """What an attempt produced. ``ok`` False means the attempt failed.

    Every text in it (output keys and values, ``error``, ``log``, ``failure_kind``) is
    masked before it is stored or shown; a field of the wrong type fails the attempt
    (see :mod:`nexusmon.engine.calls`).
    """

    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    log: str = ""  # combined stdout/stderr text kept for `nexusmon logs`
    failure_kind: str | None = None  # exit_code | timeout | exception | ...; keys omen counters
    cost_usd: float = 0.0
    cpu_s: float = 0.0
    peak_rss_kb: int = 0


@runtime_checkable
class WorkerPlugin(Protocol):
    """A worker: built-in or plugin.

    ``name`` is what missions write after ``worker:``; ``risk_level`` (E..S) is
    the floor rank of its tasks; ``capabilities`` are required by every task
    using it (a name that misspells a known capability is an error; any other is
    the plugin's own); ``params_schema`` (JSON Schema for ``with``) is checked by
    ``nexusmon validate``, and again before ``execute`` for values rendered at run time.
    """

    name: str
    capabilities: list[str]
    risk_level: str
    requires_approval: bool
    params_schema: dict[str, Any] | None

    async def execute(self, task: Task) -> Result: ...
