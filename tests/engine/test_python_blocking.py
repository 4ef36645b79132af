"""A `python` task whose function never returns cannot hold the run: its timeout, the
mission's max_time_seconds and SIGTERM all end the run (the thread is left behind)."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Workspace, task

BLOCKER = """
import time

def block(secs):
    time.sleep(secs)
    return {"slept": secs}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    workspace.write("helpers_block.py", BLOCKER)
    yield workspace
    workspace.cleanup()


def mission(ws: Workspace, extra: str = "") -> None:
    ws.write("missions/p.yaml", f"""
        mission: p
        objective: a function that sleeps for a minute
        tasks:
          block: {{worker: python, with: {{function: "helpers_block:block", secs: 60}}{extra}}}
        """)


def test_a_timed_out_function_fails_its_task_and_the_run_ends(ws: Workspace) -> None:
    mission(ws, ", timeout: 1")
    started = time.monotonic()
    doc = ws.run("p", rc=1, timeout=30)
    assert time.monotonic() - started < 15, "the run waited for the thread"
    assert task(doc, "block")["error"] == "timed out after 1s"
    assert doc["status"] == "failed"


def task_running(ws: Workspace) -> bool:
    try:
        return ws.ledger_file.exists() and ws.sql("SELECT status FROM tasks") == [("running",)]
    except sqlite3.OperationalError:  # read while the new ledger's tables are being created
        return False


def test_sigterm_interrupts_a_run_blocked_in_a_function(ws: Workspace) -> None:
    mission(ws)
    proc = ws.popen("run", "p")
    deadline = time.monotonic() + 20
    while not task_running(ws):
        assert time.monotonic() < deadline, ws.output("bg")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 130, ws.output("bg")
    assert ws.show()["status"] == "interrupted"
