"""Several `nexusmon run` processes sharing one workspace and one ledger."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Workspace, statuses

MISSION = """
    mission: busy
    objective: share the ledger
    constraints: {concurrency: 2}
    tasks:
      a1: {run: "echo $NEXUSMON_RUN_ID >> trace.log; sleep 0.3"}
      a2: {run: "echo $NEXUSMON_RUN_ID >> trace.log; sleep 0.3"}
      a3: {run: "echo $NEXUSMON_RUN_ID >> trace.log; sleep 0.3"}
      a4: {run: "echo $NEXUSMON_RUN_ID >> trace.log; sleep 0.3"}
      cached:
        sources: [src/*.txt]
        run: cat src/*.txt
      report:
        needs: [a1, a2, a3, a4, cached]
        artifacts: [dist/report.txt]
        run: mkdir -p dist && echo report > dist/report.txt
    """


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.cleanup()


def test_two_runs_at_once_both_succeed_and_the_audit_chain_holds(ws: Workspace) -> None:
    ws.write("missions/busy.yaml", MISSION)
    ws.write("src/a.txt", "alpha\n")
    procs = [ws.popen("run", "busy", "--format", "json", tag=f"run{i}") for i in range(2)]
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=60) == 0, ws.output(f"run{i}")

    runs = ws.nx("runs", "--format", "json").json()["runs"]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    first, second = sorted(runs, key=lambda r: r["started_at"])
    assert second["started_at"] < first["finished_at"], "the two runs did not overlap"
    for run in runs:
        doc = ws.show(run["run_id"])
        assert set(statuses(doc).values()) <= {"succeeded", "cached"}, doc
    assert collections.Counter(ws.lines("trace.log")) == {r["run_id"]: 4 for r in runs}

    ws.audit_verify()
    assert ws.sql("PRAGMA integrity_check") == [("ok",)]
    kinds = collections.Counter(ws.sql("select kind, run_id from audit where kind like 'run.%'"))
    assert kinds == {
        (kind, r["run_id"]): 1 for r in runs for kind in ("run.started", "run.finished")
    }
    assert ws.sql("select path, version from artifacts") == [("dist/report.txt", 1)]
