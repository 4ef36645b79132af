"""The task cache: what a hit restores, what invalidates it, and what `plan` predicts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexusmon.engine.cache import SourceHasher

from .helpers import Workspace, statuses, task


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.cleanup()


def plan_cache(ws: Workspace, mission: str) -> dict[str, Any]:
    result = ws.nx("plan", mission, "--format", "json")
    assert result.rc == 0, result.err
    return {t["id"]: (t["cache"], t["cache_reason"]) for t in result.json()["tasks"]}


BUILD = """
    mission: build
    objective: a cached build with an artifact
    tasks:
      build:
        sources: ["src/*.txt"]
        artifacts: [dist/out.txt]
        run: |
          echo ran >> runs.log
          mkdir -p dist
          cat src/*.txt > dist/out.txt
          echo "lines=$(wc -l < dist/out.txt)" >> "$NEXUSMON_OUTPUT"
          cat dist/out.txt
      consume:
        needs: [build]
        run: echo "{{ tasks.build.outputs.lines }} {{ tasks.build.outputs.stdout }}"
    """


def test_a_hit_restores_outputs_and_brings_deleted_artifacts_back_from_the_vault(
    ws: Workspace,
) -> None:
    ws.write("missions/build.yaml", BUILD)
    ws.write("src/a.txt", "alpha\n")
    first = task(ws.run("build"), "build")
    assert first["outputs"] == {"lines": "1", "stdout": "alpha", "exit_code": 0}
    (ws.root / "dist/out.txt").unlink()

    doc = ws.run("build")
    hit = task(doc, "build")
    assert hit["status"] == "cached"
    assert (hit["outputs"], hit["artifacts"]) == (first["outputs"], first["artifacts"])
    assert ws.read("dist/out.txt") == "alpha\n", "the artifact was not restored from the vault"
    assert ws.lines("runs.log") == ["ran"]
    assert task(doc, "consume")["outputs"]["stdout"] == "1 alpha"

    (ws.root / "dist/out.txt").unlink()
    shutil.rmtree(ws.state / "vault")
    doc = ws.run("build")
    assert task(doc, "build")["status"] == "succeeded", "a hit whose artifact is gone must run"
    assert ws.read("dist/out.txt") == "alpha\n"
    assert ws.lines("runs.log") == ["ran", "ran"]


def test_an_upstream_output_change_invalidates_a_cache_true_task(ws: Workspace) -> None:
    ws.write(
        "missions/chain.yaml",
        """
        mission: chain
        objective: cache on upstream results only
        tasks:
          up:
            run: cat value.txt
          down:
            needs: [up]
            cache: true
            run: echo ran >> down.log
        """,
    )
    ws.write("value.txt", "one\n")
    assert statuses(ws.run("chain")) == {"up": "succeeded", "down": "succeeded"}
    assert statuses(ws.run("chain")) == {"up": "succeeded", "down": "cached"}
    ws.write("value.txt", "two\n")
    assert statuses(ws.run("chain")) == {"up": "succeeded", "down": "succeeded"}
    assert ws.lines("down.log") == ["ran", "ran"]


def test_plan_shows_hits_misses_and_why(ws: Workspace) -> None:
    ws.write(
        "missions/build.yaml",
        """
        mission: build
        objective: cache states
        tasks:
          build:
            sources: ["src/*.txt"]
            run: cat src/*.txt
          check:
            sources: ["src/*.txt"]
            run: test ! -e fail.flag
          always:
            cache: false
            run: echo always
          after:
            needs: [build]
            cache: true
            run: echo after
        """,
    )
    ws.write("src/a.txt", "alpha\n")
    ws.write("fail.flag", "")
    assert plan_cache(ws, "build") == {
        "build": ("miss", "never ran"),
        "check": ("miss", "never ran"),
        "always": ("off", None),
        "after": ("miss", "never ran"),
    }
    assert task(ws.run("build", "--keep-going", rc=1), "check")["status"] == "failed"
    states = plan_cache(ws, "build")
    assert states["build"] == ("hit", None)
    assert states["after"] == ("hit", None)
    assert states["check"][0] == "miss", "a failed task must not be cached"
    assert states["always"] == ("off", None)
    ws.write("src/a.txt", "beta\n")
    states = plan_cache(ws, "build")
    assert states["build"] == ("miss", "source src/a.txt changed")
    assert states["after"] == ("miss", "upstream 'build' will run")


PLAIN_SOURCE = """
    mission: plain
    objective: a source named by its path, not a pattern
    tasks:
      copy:
        sources: [./src/a.txt, src/missing.txt, src]
        run: echo ran >> runs.log
    """


def test_a_source_named_by_plain_path_invalidates_like_a_pattern(ws: Workspace) -> None:
    ws.write("missions/plain.yaml", PLAIN_SOURCE)
    ws.write("src/a.txt", "one\n")
    assert statuses(ws.run("plain")) == {"copy": "succeeded"}
    assert statuses(ws.run("plain")) == {"copy": "cached"}
    ws.write("src/a.txt", "two\n")
    assert plan_cache(ws, "plain")["copy"] == ("miss", "source src/a.txt changed")
    assert statuses(ws.run("plain")) == {"copy": "succeeded"}
    ws.write("src/missing.txt", "now here\n")
    assert plan_cache(ws, "plain")["copy"] == ("miss", "source src/missing.txt new")
    assert ws.read("runs.log") == "ran\nran\n"


@pytest.mark.parametrize("pattern", [
    "src/a.txt", "./src/a.txt", "src//a.txt", "src", "src/missing.txt", ".git/config",
    ".nexusmon/x.txt", "src/*.txt", "src/a.tx[t]",
])
def test_plain_paths_match_exactly_what_the_same_glob_matches(tmp_path: Path, pattern: str) -> None:
    for rel in ("src/a.txt", "src/b.txt", ".git/config", ".nexusmon/x.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    hasher = SourceHasher(tmp_path)
    assert hasher.matches(pattern) == hasher._glob(pattern)


@pytest.mark.parametrize("pattern", ["/etc/hostname", "../outside.txt", "src/../../outside.txt", "src/../a.txt"])
def test_patterns_that_could_leave_the_workspace_match_nothing(tmp_path: Path, pattern: str) -> None:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "a.txt").write_text("inside")
    (tmp_path / "outside.txt").write_text("outside")
    assert SourceHasher(root).matches(pattern) == ()
