"""`nexusmon watch` as a real process: re-runs on edits, ignores its own writes, stops calmly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

from nexusmon.engine.watch import Targets, glob_match, triggered

TRACEBACK = "Traceback (most recent call last)"
WAIT_S = 20.0

TWO_TASKS = """
mission: w
objective: watch test
tasks:
  a:
    sources: [src/a.txt]
    run: cat src/a.txt >> a.log
  b:
    sources: [src/b.txt]
    run: cat src/b.txt >> b.log
"""


class Watch:
    """``python -m nexusmon watch ...`` in its own process group, output in files."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.out_path, self.err_path = root.parent / "watch.out", root.parent / "watch.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUSMON_")}
        env.update({"NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nexusmon", "watch", *args], cwd=root, env=env,
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
            )

    @property
    def out(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def lines(self, prefix: str) -> list[str]:
        return [ln for ln in self.out.splitlines() if ln.startswith(prefix)]

    def runs(self) -> int:
        return len(self.lines("run "))

    def wait_runs(self, count: int) -> None:
        assert wait_for(lambda: self.runs() >= count or self.proc.poll() is not None), self.dump()
        assert self.proc.poll() is None, self.dump()

    def stop(self, sig: int = signal.SIGINT) -> int:
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def dump(self) -> str:
        return f"rc={self.proc.poll()}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "missions/w.yaml", TWO_TASKS)
    write(root, "src/a.txt", "a1\n")
    write(root, "src/b.txt", "b1\n")
    return root


@pytest.fixture
def watching(root: Path):  # type: ignore[no-untyped-def]
    started: list[Watch] = []

    def start(*args: str) -> Watch:
        started.append(Watch(root, *args))
        return started[-1]

    yield start
    for w in started:
        w.kill()


def test_an_edited_source_reruns_only_the_task_that_reads_it(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    w = watching("w")
    w.wait_runs(1)
    assert (lines(root / "a.log"), lines(root / "b.log")) == (["a1"], ["b1"])

    write(root, "src/a.txt", "a2\n")
    w.wait_runs(2)

    assert lines(root / "a.log") == ["a1", "a2"]
    assert lines(root / "b.log") == ["b1"], "b's sources did not change: it stays cached"
    assert w.lines("change in") == ["change in src/a.txt: re-running w"]
    assert "(1 succeeded, 1 cached)" in w.lines("run ")[1], w.dump()
    assert w.stop() == 0, w.dump()


def test_state_dir_git_caches_artifacts_and_unrelated_files_never_trigger(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    write(root, "missions/w.yaml", """
        mission: w
        objective: a task whose artifact matches its own sources glob
        tasks:
          gen:
            sources: [src/*.txt]
            run: cat src/a.txt > src/gen.txt && echo ran >> gen.log
            artifacts: [src/gen.txt]
    """)
    w = watching("w")
    w.wait_runs(1)
    for rel in (".nexusmon/extra.txt", ".git/HEAD", "src/__pycache__/x.pyc", "notes.txt", "src/gen.txt"):
        write(root, rel, "noise\n")
    time.sleep(0.5)
    assert w.lines("change in") == [] and w.runs() == 1, w.dump()

    write(root, "src/a.txt", "a2\n")
    w.wait_runs(2)
    time.sleep(0.5)  # the run rewrote src/gen.txt: that must not start a third run
    assert w.lines("change in") == ["change in src/a.txt: re-running w"], w.dump()
    assert w.runs() == 2 and lines(root / "gen.log") == ["ran", "ran"], w.dump()
    assert w.stop() == 0


def test_an_invalid_edit_is_reported_and_a_fix_runs_again(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    w = watching("w")
    w.wait_runs(1)

    write(root, "missions/w.yaml", TWO_TASKS.replace("  a:\n", "  a:\n    needs: [nope]\n"))
    assert wait_for(lambda: "missions/w.yaml" in w.err), w.dump()
    assert wait_for(lambda: bool(w.lines("w: invalid files"))), w.dump()
    assert w.err.splitlines() == ["missions/w.yaml:5:13: error: task 'a' needs unknown task 'nope'"]
    assert w.proc.poll() is None, "watch goes on after an invalid edit"

    write(root, "missions/w.yaml", TWO_TASKS.replace("cat src/a.txt", "cat src/a.txt src/b.txt"))
    w.wait_runs(2)
    assert lines(root / "a.log") == ["a1", "a1", "b1"]
    assert w.stop() == 0
    assert TRACEBACK not in w.err


def test_a_yaml_syntax_error_in_the_mission_file_is_located(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    w = watching("w")
    w.wait_runs(1)
    (root / "missions/w.yaml").write_text(TWO_TASKS.lstrip() + "  c: [\n", encoding="utf-8")
    assert wait_for(lambda: bool(w.lines("w: invalid files"))), w.dump()
    assert w.err.splitlines() == [
        "missions/w.yaml:11:1: error: did not find expected node content while parsing a flow node",
    ], w.dump()
    assert w.proc.poll() is None


def test_workflow_files_trigger_a_rerun(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    w = watching("w")
    w.wait_runs(1)
    write(root, "policies/p.yaml", "policy: p\nrules: []\n")
    w.wait_runs(2)
    assert w.lines("change in") == ["change in policies/p.yaml: re-running w"]
    assert w.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_watching_with_status_0(root: Path, watching, sig: int) -> None:  # type: ignore[no-untyped-def]
    w = watching("w")
    w.wait_runs(1)
    assert w.stop(sig) == 0, w.dump()
    assert w.out.splitlines()[-1] == "stopped watching w"
    assert TRACEBACK not in w.err


def test_ctrl_c_during_a_run_interrupts_it_and_exits_0(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    write(root, "missions/w.yaml", """
        mission: w
        objective: a long task
        tasks:
          slow: {run: "sleep 30"}
    """)
    w = watching("w")
    assert wait_for(lambda: bool(w.lines("  start"))), w.dump()
    began = time.monotonic()
    assert w.stop() == 0, w.dump()
    assert time.monotonic() - began < 8
    assert "interrupted" in w.lines("run ")[0] and TRACEBACK not in w.err, w.dump()


def test_an_unknown_mission_is_a_usage_error(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    w = watching("nope")
    assert w.proc.wait(timeout=WAIT_S) == 2
    assert w.err.splitlines() == ["error: unknown mission 'nope'"]


# ------------------------------------------------------------------ which paths matter


def test_sources_globs_match_like_path_glob() -> None:
    assert glob_match("src/*.txt", "src/a.txt")
    assert not glob_match("src/*.txt", "src/sub/a.txt")
    assert glob_match("src/**/*.txt", "src/a.txt") and glob_match("src/**/*.txt", "src/x/y/a.txt")
    assert glob_match("./docs/**", "docs/a/b.md")
    assert glob_match("src", "src/deep/a.txt") and glob_match("src/a.txt", "src/a.txt")
    assert not glob_match("src", "srcs/a.txt")
    assert not glob_match("docs/**", "site/a.md")


def test_only_workflow_files_and_declared_sources_trigger(tmp_path: Path) -> None:
    targets = Targets(tmp_path, tmp_path / ".nexusmon", sources=("data/*.csv",), artifacts=("data/out.csv",))
    changed = [str(tmp_path / p) for p in (
        "missions/m.yaml", "runes/r.yml", "policies/p.yaml", "plugins/w.py", "nexusmon.yaml",
        "data/in.csv", "data/out.csv", ".nexusmon/ledger.db", ".git/index", "plugins/__pycache__/w.pyc",
        "missions/.m.yaml.swp", "README.md",
    )] + ["/elsewhere/data/in.csv"]
    assert triggered(targets, changed) == [
        "data/in.csv", "missions/m.yaml", "nexusmon.yaml", "plugins/w.py", "policies/p.yaml", "runes/r.yml",
    ]


def test_a_state_dir_outside_the_workspace_is_ignored_too(tmp_path: Path) -> None:
    targets = Targets(tmp_path / "ws", tmp_path / "ws" / "ci-state", sources=("**/*.db",))
    assert triggered(targets, [str(tmp_path / "ws/ci-state/ledger.db"), str(tmp_path / "ws/x.db")]) == ["x.db"]


def test_watch_starts_on_a_broken_mission_file_and_runs_once_it_is_fixed(root: Path, watching) -> None:  # type: ignore[no-untyped-def]
    (root / "missions/w.yaml").write_text("mission: w\ntasks: [\n", encoding="utf-8")
    w = watching("w")
    assert wait_for(lambda: bool(w.lines("w: invalid files"))), w.dump()
    assert w.err.splitlines() == [
        "missions/w.yaml:3:1: error: did not find expected node content while parsing a flow node",
    ], w.dump()
    write(root, "missions/w.yaml", TWO_TASKS)
    w.wait_runs(1)
    assert lines(root / "a.log") == ["a1"]
