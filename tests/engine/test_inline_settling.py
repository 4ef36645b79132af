"""Tasks that need no process settle before any event loop exists; the rest keep the
concurrency limit, whether started before the loop or in it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Workspace, statuses, task

TASKS = 6
STEP = "echo + >> {log}; sleep 0.2; echo - >> {log}; cat src/{i}.txt > /dev/null"

# Runs the real CLI in-process, then says whether asyncio's modules were ever executed.
PROBE = """
import sys
from nexusmon.entry import main
sys.argv = ["nexusmon", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("asyncio loaded:", "asyncio.base_events" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def mission(log: str) -> str:
    lines = ["mission: sourced", "objective: some cached, some not", "tasks:"]
    for i in range(TASKS):
        lines += [f"  t{i}:", f"    sources: [src/{i}.txt]", "    run: " + STEP.format(log=log, i=i)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    for i in range(TASKS):
        workspace.write(f"src/{i}.txt", f"{i}\n")
    yield workspace
    workspace.cleanup()


def most_at_once(marks: list[str]) -> int:
    running = peak = 0
    for mark in marks:
        running += 1 if mark == "+" else -1
        peak = max(peak, running)
    return peak


def probe(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, "-C", str(ws.root), *args], cwd=ws.root,
                          env=ws.env(), capture_output=True, text=True, timeout=60, check=False)


def test_an_up_to_date_rerun_settles_everything_without_an_event_loop(ws: Workspace) -> None:
    ws.write("missions/sourced.yaml", mission("first.log"))
    first = probe(ws, "run", "sourced")
    assert first.returncode == 0, first.stderr
    assert "asyncio loaded: True" in first.stderr

    again = probe(ws, "run", "sourced")
    assert again.returncode == 0, again.stderr
    assert "asyncio loaded: False" in again.stderr
    assert again.stdout.count("cached") >= TASKS
    assert ws.lines("first.log").count("+") == TASKS  # nothing ran the second time


@pytest.mark.parametrize("changed", [0, 2, 4])
def test_the_concurrency_limit_holds_when_cached_tasks_settle_first(ws: Workspace, changed: int) -> None:
    ws.write("missions/sourced.yaml", mission("first.log"))
    ws.run("sourced", "--concurrency", "2")
    assert most_at_once(ws.lines("first.log")) == 2

    ws.write("missions/sourced.yaml", mission("second.log"))  # every task's script changed
    for i in range(changed, TASKS, 2):
        ws.write(f"src/{i}.txt", "new\n")
    doc = ws.run("sourced", "--concurrency", "2")
    assert set(statuses(doc).values()) == {"succeeded"}
    marks = ws.lines("second.log")
    assert marks.count("+") == TASKS
    assert most_at_once(marks) == 2


def test_cached_tasks_settle_while_a_fresh_one_is_limited_to_one_slot(ws: Workspace) -> None:
    ws.write("missions/sourced.yaml", mission("runs.log"))
    ws.run("sourced", "--concurrency", "1")
    for i in (1, 4):
        ws.write(f"src/{i}.txt", "new\n")
    doc = ws.run("sourced", "--concurrency", "1")
    assert statuses(doc) == {f"t{i}": "succeeded" if i in (1, 4) else "cached" for i in range(TASKS)}
    marks = ws.lines("runs.log")
    assert marks.count("+") == TASKS + 2
    assert most_at_once(marks) == 1



def test_a_task_rewriting_a_source_is_seen_by_tasks_checked_after_it(ws: Workspace) -> None:
    """Cache rows looked up before the first task ran are not trusted once one has run:
    `use` is checked against the file `flip` wrote, and hits the entry of that content."""
    ws.write("src/0.txt", "A\n")
    ws.write("missions/rewrite.yaml", """
        mission: rewrite
        objective: one task feeds another through a file, without needs
        tasks:
          flip:
            cache: false
            run: if grep -q A src/0.txt; then echo B > src/0.txt; else echo A > src/0.txt; fi
          use:
            sources: [src/0.txt]
            run: echo "seen=$(cat src/0.txt)" >> "$NEXUSMON_OUTPUT"
    """)
    seen = []
    for _ in range(3):
        doc = ws.run("rewrite", "--concurrency", "1")
        seen.append((task(doc, "use")["status"], task(doc, "use")["outputs"]["seen"]))
    assert seen == [("succeeded", "B"), ("succeeded", "A"), ("cached", "B")]
