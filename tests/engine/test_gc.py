"""`nexusmon gc`: orphan objects and stale temp files go, history and the audit chain stay."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from nexusmon.store.ledger import Ledger

MISSION = """
mission: art
objective: version an artifact
inputs:
  word: {type: string, default: one}
tasks:
  make:
    run: mkdir -p dist && echo {{ inputs.word }} | tee dist/x.txt
    artifacts: [dist/x.txt]
"""


@pytest.fixture
def root(tmp_path: Path, make_workspace: Callable[..., Path]) -> Path:
    return make_workspace(tmp_path, {"missions/art.yaml": MISSION})


def objects(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".nexusmon/vault/objects").rglob("*") if p.is_file())


def orphan(root: Path, content: bytes) -> Path:
    hexdigest = hashlib.sha256(content).hexdigest()
    blob = root / ".nexusmon/vault/objects" / hexdigest[:2] / hexdigest
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    return blob


def sql(root: Path, query: str) -> list[Any]:
    db = sqlite3.connect(root / ".nexusmon/ledger.db")
    try:
        return [row[0] for row in db.execute(query)]
    finally:
        db.close()


def test_gc_removes_orphan_objects_and_keeps_referenced_ones(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    [kept] = objects(root)
    gone = orphan(root, b"nobody points at me\n")

    result = cli(["gc"], root)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "removed 1 vault object(s) (20 B), 0 temp file(s) (0 B), 0 run(s)\n"
    assert objects(root) == [kept] and not gone.exists()
    assert cli(["vault", "cat", "dist/x.txt"], root).stdout == "one\n"


def test_dry_run_reports_and_removes_nothing(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    blob = orphan(root, b"orphan\n")
    result = cli(["gc", "--dry-run", "--format", "json"], root)
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True
    assert doc["objects"] == {"count": 1, "bytes": 7, "digests": [f"sha256:{blob.name}"]}
    assert blob.exists()
    assert "gc.completed" not in sql(root, "SELECT kind FROM audit")


def test_keep_runs_forgets_older_runs_but_not_their_artifacts_or_audit(root: Path, cli: Callable[..., Any]) -> None:
    for word in ("one", "two", "three"):
        assert cli(["run", "art", "-i", f"word={word}"], root).exit_code == 0
    newest = sql(root, "SELECT run_id FROM runs ORDER BY started_at DESC")[0]
    assert len(sql(root, "SELECT DISTINCT run_id FROM logs")) == 3

    result = cli(["gc", "--keep-runs", "1", "--format", "json"], root)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["runs"]["count"] == 2

    assert sql(root, "SELECT run_id FROM runs") == [newest]
    assert sql(root, "SELECT DISTINCT run_id FROM tasks") == [newest]
    assert sql(root, "SELECT DISTINCT run_id FROM logs") == [newest]
    assert sql(root, "SELECT version FROM artifacts ORDER BY version") == [1, 2, 3]
    assert len(objects(root)) == 3
    assert cli(["vault", "cat", "dist/x.txt@v1"], root).stdout == "one\n"
    with Ledger(root / ".nexusmon") as ledger:
        assert ledger.verify_audit() is None
        last = ledger.events()[-1]
    assert last.kind == "gc.completed" and len(last.payload["runs"]) == 2
    assert cli(["runs"], root).stdout.startswith(newest)


def test_stale_temp_files_go_and_fresh_ones_stay(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    state = root / ".nexusmon"
    stale = [state / "tmp/out-old", state / "vault/tmp/blob-old"]
    fresh = state / "tmp/out-new"
    for path in [*stale, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x" * 10)
    two_hours_ago = time.time() - 7200
    for path in stale:
        os.utime(path, (two_hours_ago, two_hours_ago))

    result = cli(["gc"], root)
    assert result.stdout == "removed 0 vault object(s) (0 B), 2 temp file(s) (20 B), 0 run(s)\n"
    assert fresh.exists() and not any(p.exists() for p in stale)


def test_without_a_ledger_there_is_nothing_to_collect(root: Path, cli: Callable[..., Any]) -> None:
    result = cli(["gc", "--keep-runs", "0"], root)
    assert result.exit_code == 0
    assert result.stdout == "removed 0 vault object(s) (0 B), 0 temp file(s) (0 B), 0 run(s)\n"
    assert not (root / ".nexusmon").exists()


def test_keep_runs_does_not_cost_the_workspace_its_evolution(root: Path, cli: Callable[..., Any]) -> None:
    for word in ("one", "two"):
        assert cli(["run", "art", "-i", f"word={word}"], root).exit_code == 0
    assert cli(["gc", "--keep-runs", "0"], root).exit_code == 0
    assert sql(root, "SELECT run_id FROM runs") == []
    status = json.loads(cli(["status", "--format", "json"], root).stdout)
    assert status["level"] == "AWAKENING" and status["completed_missions"] == 2
