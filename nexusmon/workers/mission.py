"""The ``mission`` worker: run another mission of the workspace as a child run.

``with: {mission: ID, inputs: {...}}``. The child is a separate ``nexusmon run``
process sharing the parent's state directory; its run is linked to the parent
run and task in the ledger (``runs.parent_run_id`` / ``parent_task_id``).
Outputs: ``run_id``, ``status`` and the child's task outputs under ``tasks``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from nexusmon.util.masking import Masker
from nexusmon.util.process import run_process
from nexusmon.workers.base import Result, Task

PARENT_RUN_ENV = "NEXUSMON_PARENT_RUN"
PARENT_TASK_ENV = "NEXUSMON_PARENT_TASK"


PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["mission"],
    "additionalProperties": False,
    "properties": {
        "mission": {"type": "string", "description": "Id of the mission to run as a child run."},
        "inputs": {"type": "object", "description": "Inputs for the child mission."},
    },
}


class MissionWorker:
    name = "mission"
    capabilities: list[str] = []  # noqa: RUF012
    risk_level = "C"
    requires_approval = False
    params_schema: dict[str, Any] | None = PARAMS_SCHEMA

    async def execute(self, task: Task) -> Result:
        fd, inputs_file = tempfile.mkstemp(prefix="child-inputs-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(task.params.get("inputs") or {}), fh)
        env = dict(task.env)
        env[PARENT_RUN_ENV] = task.run_id
        env[PARENT_TASK_ENV] = task.id
        argv = [sys.executable, "-m", "nexusmon", "-C", str(task.workspace), "run",
                str(task.params["mission"]), "--inputs-file", inputs_file, "--format", "json"]
        try:
            done = await run_process(argv, cwd=task.workspace, env=env, timeout=task.timeout,
                                     masker=Masker(task.secrets))
        finally:
            os.unlink(inputs_file)
        return _result(done.exit_code, done.stdout, done.stderr, done.error)


def _result(code: int | None, stdout: str, stderr: str, error: str | None) -> Result:
    try:
        doc = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        doc = {}
    outputs: dict[str, Any] = {
        "run_id": doc.get("run_id"), "status": doc.get("status"),
        "tasks": {t["id"]: t.get("outputs", {}) for t in doc.get("tasks", [])},
    }
    if code == 0:
        return Result(True, outputs=outputs, log=stderr)
    why = error or (stderr.strip().splitlines() or [f"exit code {code}"])[-1]
    return Result(False, outputs=outputs, error=f"child mission {doc.get('status') or 'failed'}: {why}",
                  failure_kind="child_run", log=stderr)
