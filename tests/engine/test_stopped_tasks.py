"""Tasks the run stops (Ctrl-C, its time limit, a task's KeyboardInterrupt) keep what they did:
their attempts and what they printed. A plugin that blocks the event loop past its timeout fails."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from .helpers import Workspace, task

PLUGINS = """
import asyncio
import time

from nexusmon.workers.base import Result


class Stopper:
    name = "stopper"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        print("about to stop")
        raise KeyboardInterrupt


class Blocker:
    name = "blocker"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        time.sleep(float(task.params.get("seconds", 1.5)))
        return Result(True, outputs={"slept": True})
"""


def test_a_plugin_raising_keyboard_interrupt_stops_the_run_and_still_reports_it(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("plugins/stoppers.py", PLUGINS)
    ws.write("missions/k.yaml", """
        mission: k
        objective: a plugin raises KeyboardInterrupt
        tasks:
          first: {run: echo first}
          stop: {needs: first, worker: stopper}
          later: {needs: stop, run: touch later.txt}
        """)
    result = ws.nx("run", "k", "--format", "json")
    assert result.rc == 130, result.err
    doc = result.json()
    assert doc["status"] == "interrupted"
    assert {t["id"]: t["status"] for t in doc["tasks"]} == {
        "first": "succeeded", "stop": "cancelled", "later": "cancelled"}
    assert task(doc, "stop")["error"] == "interrupted: the task raised KeyboardInterrupt"
    assert ws.nx("logs", "last", "stop").out == "about to stop\n"
    assert not ws.exists("later.txt")


def test_a_plugin_that_blocks_past_its_timeout_fails_instead_of_succeeding(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("plugins/stoppers.py", PLUGINS)
    ws.write("missions/b.yaml", """
        mission: b
        objective: a blocking plugin
        tasks:
          block: {worker: blocker, with: {seconds: 1.2}, timeout: 0.3}
          quick: {worker: blocker, with: {seconds: 0}, timeout: 5}
        """)
    doc = ws.run("b", "--keep-going", rc=1)
    block = task(doc, "block")
    assert block["status"] == "failed"
    assert block["error"].startswith("timed out after 0.3s (the worker returned after 1.")
    assert block["outputs"] == {}
    assert task(doc, "quick")["status"] == "succeeded"


RETRYING = """
    mission: ra
    objective: a task that fails and retries until it is stopped
    tasks:
      flaky: {run: "echo try $(date +%N) >> tries.log; echo attempt-output; exit 1", retries: 20, retry_delay: 0.2}
      hang: {run: "echo before-hang; sleep 30"}
    """


def _tries(ws: Workspace) -> int:
    return len(ws.lines("tries.log")) if ws.exists("tries.log") else 0


def test_a_task_stopped_by_ctrl_c_keeps_its_attempts_and_what_it_printed(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/ra.yaml", RETRYING)
    proc = ws.popen("run", "ra", "--format", "json", "--concurrency", "2")
    deadline = time.monotonic() + 20
    while _tries(ws) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode == 130, ws.output("bg")
    shown = ws.show()
    flaky, hang = task(shown, "flaky"), task(shown, "hang")
    assert (flaky["status"], hang["status"]) == ("cancelled", "cancelled")
    tries = _tries(ws)
    assert tries >= 3
    assert flaky["attempts"] in (tries, tries + 1)  # stopped in a retry's delay, or in the attempt
    assert ws.nx("logs", "last", "flaky").out.count("attempt-output") == tries
    assert (hang["attempts"], ws.nx("logs", "last", "hang").out) == (1, "before-hang\n")
    assert ws.nx("audit", "verify").rc == 0


def test_a_task_stopped_by_the_run_s_time_limit_keeps_what_it_printed(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/t.yaml", """
        mission: t
        objective: a hung task under a time limit
        constraints: {max_time_seconds: 0.8}
        tasks:
          hang: {run: "echo before-hang; sleep 30"}
        """)
    doc = ws.run("t", rc=1)
    hang = task(doc, "hang")
    assert (hang["status"], hang["error"], hang["attempts"]) == (
        "failed", "the run exceeded constraints.max_time_seconds", 1)
    assert ws.nx("logs", "last", "hang").out == "before-hang\n"
