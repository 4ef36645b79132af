"""Scores read each task's own history from the ledger: trust, prediction confidence and
economic value move with how its recent runs ended."""

from __future__ import annotations

from pathlib import Path

from .helpers import Workspace


def axes(ws: Workspace) -> dict[str, dict[str, int]]:
    result = ws.nx("plan", "m", "--format", "json")
    assert result.rc == 0, result.err
    return {t["id"]: t["score"]["axes"] for t in result.json()["tasks"]}


def test_trust_and_confidence_follow_each_tasks_own_runs(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    try:
        ws.write("missions/m.yaml", """
            mission: m
            objective: one task that works, one that fails, one cached
            tasks:
              good: {run: 'true', cache: false}
              bad: {run: 'exit 3', cache: false}
              kept: {sources: [in.txt], run: 'true'}
            """)
        ws.write("in.txt", "x\n")
        before = axes(ws)
        assert {name: (a["trust"], a["prediction_confidence"]) for name, a in before.items()} == {
            "good": (42, 30), "bad": (42, 30), "kept": (42, 30)}  # no history: success counts as 60
        for _ in range(3):
            assert ws.nx("run", "m", "--keep-going").rc == 1
        after = axes(ws)
        # 3 runs: confidence round(30 + 70 * 3 / 8) = 56; trust 0.7 * success rate (no level yet)
        assert (after["good"]["trust"], after["good"]["prediction_confidence"]) == (70, 56)
        assert (after["bad"]["trust"], after["bad"]["prediction_confidence"]) == (0, 56)
        # kept: ran once, cached twice: a hit rate of 2/3 adds 30 * 2/3 - 10 = 10 to its value
        assert after["kept"]["economic_value"] == before["kept"]["economic_value"] + 10
        assert after["good"]["economic_value"] == before["good"]["economic_value"] - 10
    finally:
        ws.cleanup()
