"""The ``noop`` worker: does nothing and succeeds (joins, placeholders, benchmarks)."""

from __future__ import annotations

from typing import Any

from nexusmon.workers.base import Result, Task


class NoopWorker:
    """Succeeds at once with no outputs."""

    name = "noop"
    capabilities: list[str] = []  # noqa: RUF012 - the plugin contract's attribute
    risk_level = "E"
    requires_approval = False
    params_schema: dict[str, Any] | None = {"type": "object"}  # noqa: RUF012

    async def execute(self, task: Task) -> Result:
        return Result(ok=True)
