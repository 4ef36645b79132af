"""Parameters rendered at run time are checked against the worker's params_schema before it runs."""

from __future__ import annotations

from pathlib import Path

from .helpers import Workspace, task

COUNTER = """
from pathlib import Path

from nexusmon.workers.base import Result


class Counter:
    name = "counter"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "label": {"type": "string"}},
        "required": ["count"],
    }

    async def execute(self, task):
        Path(task.workspace, "called-" + task.id).write_text(repr(task.params))
        return Result(ok=True, outputs={"count": task.params["count"]})
"""

MISSION = """
    mission: params
    objective: run-time values meet the worker's schema
    tasks:
      src:
        run: |
          echo n=abc >> "$NEXUSMON_OUTPUT"
          echo label=from-src >> "$NEXUSMON_OUTPUT"
          echo empty= >> "$NEXUSMON_OUTPUT"
      count:
        needs: [src]
        worker: counter
        with: {count: "{{ tasks.src.outputs.n }}"}
      labelled:
        needs: [src]
        worker: counter
        with: {count: 2, label: "{{ tasks.src.outputs.label }}"}
      fetch:
        needs: [src]
        worker: http
        with: {url: "{{ tasks.src.outputs.empty }}"}
    """


def test_a_run_time_value_that_breaks_the_schema_fails_the_task_without_calling_the_worker(
    tmp_path: Path,
) -> None:
    ws = Workspace(tmp_path)
    ws.write("plugins/counter.py", COUNTER)
    ws.write("missions/params.yaml", MISSION)
    assert ws.nx("validate").rc == 0
    doc = ws.run("params", "--keep-going", rc=1)
    count = task(doc, "count")
    assert (count["status"], count["attempts"], count["error"]) == (
        "failed", 0,
        "task 'count': worker 'counter': with.count must be integer, got 'abc' (rendered at run time)",
    )
    assert not ws.exists("called-count")
    labelled = task(doc, "labelled")
    assert (labelled["status"], labelled["outputs"]) == ("succeeded", {"count": 2})
    assert ws.read("called-labelled") == "{'count': 2, 'label': 'from-src'}"
    fetch = task(doc, "fetch")
    assert (fetch["status"], fetch["error"]) == (
        "failed",
        ("task 'fetch': worker 'http': with.url must be longer than or equal to 1 characters, got '' "
         "(rendered at run time)"),
    )
    assert ws.sql("SELECT task_id, failure_kind FROM tasks WHERE status = 'failed' ORDER BY task_id") == [
        ("count", "params"), ("fetch", "params"),
    ]
    assert ws.show()["tasks"] == doc["tasks"]
    ws.audit_verify()
