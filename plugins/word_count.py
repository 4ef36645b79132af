"""Example workspace plugin: count words in a workspace file.

Use it from a mission as::

    count:
      worker: word-count
      with: {path: README.md}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from nexusmon.workers.base import Result, Task


class WordCount:
    name = "word-count"
    capabilities: List[str] = []
    risk_level = "E"
    requires_approval = False
    params_schema: Optional[Dict[str, Any]] = {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {"path": {"type": "string", "description": "File to count, inside the workspace"}},
    }

    async def execute(self, task: Task) -> Result:
        path = (task.workspace / str(task.params["path"])).resolve()
        if not path.is_relative_to(task.workspace.resolve()):
            return Result(False, error=f"{task.params['path']} is outside the workspace")
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return Result(False, error=f"cannot read {task.params['path']}: {exc.strerror}")
        return Result(True, outputs={"words": len(text.split()), "lines": text.count("\n")})
