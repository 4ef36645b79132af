"""The ``llm`` worker (Anthropic Messages API): a placeholder that fails clearly.

It is registered so missions and policies can name it (risk C, requires the
COMPANION capability); executing it reports that it is not available yet.
"""

from __future__ import annotations

from typing import Any

from nexusmon.workers.base import Result, Task


class LlmWorker:
    """Placeholder for the Anthropic Messages API worker."""

    name = "llm"
    capabilities: list[str] = ["COMPANION"]  # noqa: RUF012 - the plugin contract's attribute
    risk_level = "C"
    requires_approval = False
    params_schema: dict[str, Any] | None = {"type": "object"}  # noqa: RUF012

    async def execute(self, task: Task) -> Result:
        return Result(
            ok=False,
            error="the llm worker is not available yet",
            failure_kind="unavailable",
        )
