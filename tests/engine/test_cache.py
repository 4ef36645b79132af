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


@pytest.mark.parametrize(("pattern", "expected"), [
    ("src/a.txt", ("src/a.txt",)),
    ("./src/a.txt", ("src/a.txt",)),
    ("src//a.txt", ("src/a.txt",)),
    ("src", ("src/a.txt", "src/b.txt", "src/deep/c.txt")),
    ("src/**", ("src/a.txt", "src/b.txt", "src/deep/c.txt")),
    ("**", ("src/a.txt", "src/b.txt", "src/deep/c.txt", "state/x/notes.txt")),
    ("src/*.txt", ("src/a.txt", "src/b.txt")),
    ("src/**/*.txt", ("src/a.txt", "src/b.txt", "src/deep/c.txt")),
    ("src/a.tx[t]", ("src/a.txt",)),
    ("src/missing.txt", ()),
    (".git/config", ()),
    (".nexusmon/x.txt", ()),
    ("**/ledger.db", ()),
    ("state", ("state/x/notes.txt",)),
])
def test_patterns_match_files_below_folders_but_never_state_or_git(
    tmp_path: Path, pattern: str, expected: tuple[str, ...]
) -> None:
    files = ("src/a.txt", "src/b.txt", "src/deep/c.txt", ".git/config", ".nexusmon/x.txt",
             "ci-state/ledger.db", "state/x/notes.txt")
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert SourceHasher(tmp_path, tmp_path / "ci-state").matches(pattern) == expected


@pytest.mark.parametrize("pattern", ["/etc/hostname", "../outside.txt", "src/../../outside.txt", "src/../a.txt"])
def test_patterns_that_could_leave_the_workspace_match_nothing(tmp_path: Path, pattern: str) -> None:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "a.txt").write_text("inside")
    (tmp_path / "outside.txt").write_text("outside")
    assert SourceHasher(root).matches(pattern) == ()


SELF_CAPTURE = """
    mission: everything
    objective: an artifact glob as wide as the workspace
    tasks:
      snap:
        cache: true
        run: mkdir -p site/a && echo x > x.txt && echo y > site/a/y.txt
        artifacts: ["**/*"]
      docs:
        needs: [snap]
        run: "true"
        artifacts: ["site/**"]
    """


def test_wide_artifact_globs_never_take_in_the_ledger_or_git(ws: Workspace) -> None:
    ws.write("missions/everything.yaml", SELF_CAPTURE)
    ws.write(".git/HEAD", "ref: refs/heads/main\n")
    first = ws.run("everything")
    stored = [a["path"] for a in task(first, "snap")["artifacts"]]
    assert stored == ["missions/everything.yaml", "site/a/y.txt", "x.txt"]
    assert [a["path"] for a in task(first, "docs")["artifacts"]] == ["site/a/y.txt"]
    second = ws.run("everything")
    assert statuses(second) == {"snap": "cached", "docs": "succeeded"}
    assert [r["run_id"] for r in ws.nx("runs", "--format", "json").json()["runs"]] == [
        second["run_id"], first["run_id"]]
    assert ws.nx("audit", "verify").rc == 0


def test_an_explicit_state_path_as_artifact_fails_with_the_reason(ws: Workspace) -> None:
    ws.write("missions/grab.yaml", """
        mission: grab
        objective: try to store the ledger
        tasks:
          grab: {run: "true", artifacts: [.nexusmon/ledger.db]}
        """)
    doc = ws.run("grab", rc=1)
    assert task(doc, "grab")["error"] == (
        "artifact '.nexusmon/ledger.db' is inside .git or nexusmon's state directory, "
        "which are never stored")


def test_a_folder_source_sees_changes_anywhere_below_it(ws: Workspace) -> None:
    ws.write("missions/tree.yaml", """
        mission: tree
        objective: sources named as folders and trailing **
        tasks:
          folder: {sources: [src], run: "echo ran >> folder.log"}
          starstar: {sources: ["src/**"], run: "echo ran >> starstar.log"}
        """)
    ws.write("src/deep/a.txt", "one\n")
    assert statuses(ws.run("tree")) == {"folder": "succeeded", "starstar": "succeeded"}
    assert statuses(ws.run("tree")) == {"folder": "cached", "starstar": "cached"}
    ws.write("src/deep/a.txt", "two\n")
    assert plan_cache(ws, "tree")["folder"] == ("miss", "source src/deep/a.txt changed")
    assert statuses(ws.run("tree")) == {"folder": "succeeded", "starstar": "succeeded"}
    assert ws.lines("folder.log") == ws.lines("starstar.log") == ["ran", "ran"]


NOISY = """
    mission: noisy
    objective: a cached task whose result differs each time it really runs
    tasks:
      roll:
        sources: [seed.txt]
        run: "n=$(cat counter 2>/dev/null || echo 0); echo $((n+1)) > counter; cat counter"
"""


def test_no_cache_results_refresh_the_cache(ws: Workspace) -> None:
    ws.write("missions/noisy.yaml", NOISY)
    ws.write("seed.txt", "s\n")
    assert task(ws.run("noisy"), "roll")["outputs"]["stdout"] == "1"
    assert task(ws.run("noisy", "--no-cache"), "roll")["outputs"]["stdout"] == "2"
    again = task(ws.run("noisy"), "roll")
    assert (again["status"], again["outputs"]["stdout"]) == ("cached", "2")


def test_plan_names_the_parameter_env_or_artifact_change_behind_a_miss(ws: Workspace) -> None:
    mission = """
        mission: pack
        objective: one cached task
        env: {LEVEL: "1"}
        tasks:
          pack:
            sources: [seed.txt]
            run: echo {{ env.LEVEL }} > a.out && touch b.out
            artifacts: [a.out]
        """
    ws.write("missions/pack.yaml", mission)
    ws.write("seed.txt", "s\n")
    ws.run("pack")
    ws.write("missions/pack.yaml", mission.replace('LEVEL: "1"', 'LEVEL: "2"'))
    assert plan_cache(ws, "pack")["pack"] == ("miss", "parameter run changed, env LEVEL changed")
    ws.write("missions/pack.yaml", mission.replace("[a.out]", "[a.out, b.out]"))
    assert plan_cache(ws, "pack")["pack"] == ("miss", "artifacts")
    assert [a["path"] for a in task(ws.run("pack"), "pack")["artifacts"]] == ["a.out", "b.out"]


def test_a_source_changed_while_its_task_ran_leaves_no_cache_entry(ws: Workspace) -> None:
    ws.write("missions/race.yaml", """
        mission: race
        objective: a source edited while the task reads it
        inputs:
          poke: {type: boolean, default: false}
        tasks:
          read: {sources: [in.txt], run: "sleep 1; cat in.txt"}
          edit: {if: inputs.poke, run: "sleep 0.2; echo 2 > in.txt"}
        """)
    ws.write("in.txt", "1\n")
    first = ws.run("race", "-i", "poke=true", "--concurrency", "2")
    assert task(first, "read")["outputs"]["stdout"] == "2"
    ws.write("in.txt", "1\n")  # the content the run started with is back
    assert plan_cache(ws, "race")["read"][0] == "miss"
    second = ws.run("race")
    assert (task(second, "read")["status"], task(second, "read")["outputs"]["stdout"]) == ("succeeded", "1")
    skipped = [line for line in ws.nx("audit").out.splitlines() if "cache.skipped" in line]
    assert len(skipped) == 1 and "in.txt" in skipped[0]
    assert statuses(ws.run("race")) == {"read": "cached", "edit": "skipped"}
