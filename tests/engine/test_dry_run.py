"""`run --dry-run`: nothing executes; the document is run-shaped and predicts what
governance and the cache decide; the exit code is the one governance would give the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Workspace, statuses


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.cleanup()


GOVERNED = """
    mission: gov
    objective: every fate governance decides
    tasks:
      build: {run: touch built.txt}
      wipe: {run: "rm -rf / ", needs: [build]}
      after-wipe: {needs: [wipe], run: touch after-wipe.txt}
      ship: {needs: [build], run: touch shipped.txt, rank: A}
      after-ship: {needs: [ship], run: touch after-ship.txt}
      never: {run: touch never.txt, if: "false"}
    """

DENY = """
    policy: safety
    rules:
      - id: never-wipe-root
        when: {run_matches: 'rm\\s+-rf\\s+/(\\s|$)'}
        then: {deny: refusing to delete the filesystem root}
    """


def test_a_dry_run_document_is_run_shaped_and_runs_nothing(ws: Workspace) -> None:
    ws.write("missions/plain.yaml", """
        mission: plain
        objective: two steps
        tasks:
          a: {run: touch a.txt}
          b: {needs: [a], run: touch b.txt}
        """)
    result = ws.nx("run", "plain", "--dry-run", "--format", "json")
    assert result.rc == 0, result.err
    doc = result.json()
    assert (doc["run_id"], doc["dry_run"], doc["status"], doc["mission"]) == (None, True, "planned", "plain")
    for task in doc["tasks"]:
        assert {k: task[k] for k in ("status", "attempts", "duration_s", "outputs", "artifacts")} == {
            "status": "planned", "attempts": 0, "duration_s": 0.0, "outputs": {}, "artifacts": []}
        assert (task["rank"], task["decision"]) == ("D", "auto")
    assert not ws.exists("a.txt") and not ws.exists("b.txt")
    assert ws.nx("runs", "--format", "json").json()["runs"] == []


def test_a_dry_run_predicts_blocked_held_skipped_and_cancelled_tasks(ws: Workspace) -> None:
    ws.write("missions/gov.yaml", GOVERNED)
    ws.write("policies/safety.yaml", DENY)
    result = ws.nx("run", "gov", "--dry-run", "--format", "json")
    assert result.rc == 4, result.err
    doc = result.json()
    assert (doc["status"], doc["exit_code"]) == ("blocked", 4)
    assert statuses(doc) == {
        "build": "planned", "wipe": "blocked", "after-wipe": "cancelled", "ship": "awaiting_approval",
        "after-ship": "cancelled", "never": "skipped",
    }
    assert list(ws.root.glob("*.txt")) == []
    text = ws.nx("run", "gov", "--dry-run")
    assert text.rc == 4
    assert "  wipe  shell  D  blocked  blocked" in text.out
    assert text.out.rstrip().endswith("the run would be blocked by policy (exit 4)")


def test_a_dry_run_of_a_held_run_exits_3(ws: Workspace) -> None:
    ws.write("missions/gov.yaml", GOVERNED)
    result = ws.nx("run", "gov", "--dry-run", "--format", "json")
    assert result.rc == 3, result.err
    assert result.json()["status"] == "awaiting_approval"
    assert statuses(result.json())["wipe"] == "planned"


def test_a_dry_run_predicts_cache_hits_unless_no_cache(ws: Workspace) -> None:
    ws.write("missions/src.yaml", """
        mission: src
        objective: cached after one run
        tasks:
          compile: {run: echo compiled >> trace.log, sources: [src.txt]}
        """)
    ws.write("src.txt", "one")
    ws.run("src")
    assert statuses(ws.nx("run", "src", "--dry-run", "--format", "json").json()) == {"compile": "cached"}
    no_cache = ws.nx("run", "src", "--dry-run", "--no-cache", "--format", "json").json()
    assert statuses(no_cache) == {"compile": "planned"}
    ws.write("src.txt", "two")
    assert statuses(ws.nx("run", "src", "--dry-run", "--format", "json").json()) == {"compile": "planned"}
    assert ws.lines("trace.log") == ["compiled"]
