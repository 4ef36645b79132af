"""`nexusmon status` (evolution) and `nexusmon omens` (repeated-failure counters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_keygen_approve import audit_events, lines, nx, nx_json, write

HELLO = """
mission: hello
objective: succeed
tasks:
  hi: {run: echo hi}
"""

FLAKY = """
mission: flaky
objective: always fails
tasks:
  boom: {run: "echo boom >> boom.log; exit 7"}
"""

OMEN_POLICY = """
policy: omens
rules: []
omens: {warn: 1, intervene: 2, lock: 3}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "missions/hello.yaml", HELLO)
    write(root, "missions/flaky.yaml", FLAKY)
    return root


def test_status_before_anything_ran_is_dormant_and_creates_no_state(ws: Path) -> None:
    outcome = nx(ws, "status")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines()[:3] == [
        "level DORMANT  0 XP  (0 missions completed)",
        "next  AWAKENING at 1 mission: 1 to go  [....................] 0%",
        "capabilities: none yet",
    ]
    assert not (ws / ".nexusmon").exists()


def test_status_after_a_successful_run(ws: Path) -> None:
    assert nx(ws, "run", "hello").code == 0
    code, doc = nx_json(ws, "status")
    assert code == 0
    assert (doc["level"], doc["xp"], doc["completed_missions"]) == ("AWAKENING", 100, 1)
    assert doc["capabilities"] == ["COMPANION", "RECALL"]
    assert doc["next_level"] == {"name": "FORGING", "min_missions": 10, "xp": 1000,
                                 "missions_to_go": 9, "progress": 0.0}
    assert [(lvl["name"], lvl["reached"]) for lvl in doc["levels"]] == [
        ("DORMANT", True), ("AWAKENING", True), ("FORGING", False), ("SOVEREIGN", False), ("APEX", False),
    ]
    text = nx(ws, "status").out
    assert "  [x] AWAKENING    1  COMPANION, RECALL  <- you are here" in text.splitlines()


def test_failed_runs_earn_no_xp(ws: Path) -> None:
    assert nx(ws, "run", "flaky").code == 1
    assert nx_json(ws, "status")[1]["level"] == "DORMANT"


def test_status_follows_policy_level_thresholds(ws: Path) -> None:
    write(ws, "policies/evolution.yaml", """
        policy: evolution
        rules: []
        evolution: {levels: {AWAKENING: 1, FORGING: 3}}
        """)
    assert nx(ws, "run", "hello").code == 0
    assert nx(ws, "run", "hello").code == 0
    doc = nx_json(ws, "status")[1]
    assert doc["next_level"]["name"] == "FORGING"
    assert doc["next_level"]["missions_to_go"] == 1
    assert "next  FORGING at 3 missions: 1 to go  [##########..........] 50%" in nx(ws, "status").out


# ---------------------------------------------------------------- omens


def test_no_omens_without_failures_and_no_state_created(ws: Path) -> None:
    outcome = nx(ws, "omens")
    assert outcome.code == 0
    assert outcome.out == "no omens: no repeated failures recorded (warn 3, intervene 7, lock 13)\n"
    assert not (ws / ".nexusmon").exists()


def test_omens_list_counters_with_their_level(ws: Path) -> None:
    write(ws, "policies/omens.yaml", OMEN_POLICY)
    assert nx(ws, "run", "flaky").code == 1
    assert nx(ws, "run", "flaky").code == 1
    code, doc = nx_json(ws, "omens")
    assert code == 0
    assert doc["thresholds"] == {"warn": 1, "intervene": 2, "lock": 3}
    assert [(o["mission"], o["task"], o["count"], o["level"]) for o in doc["omens"]] == [
        ("flaky", "boom", 2, "intervene"),
    ]
    table = nx(ws, "omens").out.splitlines()
    assert table[0].split() == ["mission", "task", "kind", "count", "level", "last", "failure"]
    assert table[1].split()[:2] == ["flaky", "boom"] and table[1].split()[3:5] == ["2", "intervene"]
    assert table[-1] == "thresholds: warn 1, intervene 2, lock 3"
    assert nx_json(ws, "omens", "--mission", "hello")[1]["omens"] == []


def test_omens_clear_resets_counters_and_is_audited(ws: Path) -> None:
    write(ws, "policies/omens.yaml", OMEN_POLICY.replace("lock: 3", "lock: 2"))
    for _ in range(3):
        nx(ws, "run", "flaky")
    assert nx_json(ws, "plan", "flaky")[1]["tasks"][0]["decision"] == "blocked"
    assert len(lines(ws, "boom.log")) == 2, "a locked task does not run"

    outcome = nx(ws, "omens", "clear", "--mission", "flaky", "--task", "boom")
    assert outcome.code == 0, outcome.err
    assert outcome.out == "cleared 1 omen counter of mission flaky, task boom\n"
    assert nx_json(ws, "omens")[1]["omens"] == []
    assert nx_json(ws, "plan", "flaky")[1]["tasks"][0]["decision"] == "auto"
    cleared = audit_events(ws, "omens.cleared")
    assert [e["payload"] for e in cleared] == [{"mission": "flaky", "task": "boom", "cleared": 1}]
    assert nx(ws, "audit", "verify").code == 0
    assert nx(ws, "omens", "clear").out == "cleared 0 omen counters\n"
