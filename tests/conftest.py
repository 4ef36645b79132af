"""Shared fixtures: sample workspaces written as real files, and the real CLI.

``cli(args, cwd)`` runs ``nexusmon ARGS`` in-process through the same error
boundary as the console script (`nexusmon.cli.common.run_boundary`), so exit
codes and messages are exactly what users see; ``nexusmon_process`` runs the
installed module as a subprocess for the few checks that need a real process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, NamedTuple, Union

import pytest
from click.testing import CliRunner

from nexusmon.cli.common import run_boundary
from nexusmon.cli.main import cli as nexusmon_group

PathLike = Union[str, "os.PathLike[str]"]
TRACEBACK = "Traceback (most recent call last)"


class CliResult(NamedTuple):
    """What a user sees from one command: exit code, stdout, stderr."""

    exit_code: int
    stdout: str
    stderr: str


def write_workspace(tmp_path: Path, files: Mapping[str, str], name: str = "ws") -> Path:
    """Create ``tmp_path/name`` holding ``files`` (paths -> dedented text); return the root.

    The root always has a ``missions/`` folder, so it is found as a workspace.
    """
    root = tmp_path / name
    (root / "missions").mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@contextlib.contextmanager
def _working_directory(path: PathLike | None) -> Iterator[None]:
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _runner() -> CliRunner:
    try:  # click 8.1 mixes stderr into stdout unless told otherwise
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 always keeps them apart
        return CliRunner()


def run_cli(
    args: Sequence[str], cwd: PathLike | None = None, env: Mapping[str, str | None] | None = None,
) -> CliResult:
    """Run ``nexusmon ARGS`` in-process from ``cwd``; never raises for a user's mistake."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("NEXUSMON_")}
    clean.update(env or {})
    with _working_directory(cwd), _runner().isolation(env=clean) as streams:
        code = run_boundary(nexusmon_group, [str(a) for a in args])
    out, err = streams[0].getvalue(), streams[1].getvalue()
    return CliResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def run_process(
    args: Sequence[str], cwd: PathLike, env: Mapping[str, str] | None = None, timeout: float = 60,
) -> CliResult:
    """Run ``python -m nexusmon ARGS`` as a real process from ``cwd``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUSMON_")}
    full_env.update({"NO_COLOR": "1", "COLUMNS": "500", "PYTHONIOENCODING": "utf-8"})
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "nexusmon", *map(str, args)], check=False, cwd=cwd, env=full_env,
        capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def error_lines(stderr: str) -> list[str]:
    """The compiler-style ``path:line:col: error: ...`` lines of a command's stderr."""
    return [line for line in stderr.splitlines() if ": error: " in line and not line.startswith("error:")]


def validate_errors(root: PathLike, *paths: str) -> list[str]:
    """``nexusmon validate [PATHS]`` in ``root``: its error lines (exit status checked)."""
    result = run_cli(["validate", *paths], root)
    assert TRACEBACK not in result.stderr, result.stderr
    lines = error_lines(result.stderr)
    assert result.exit_code == (1 if lines else 0), result
    return lines


def plan_document(root: PathLike, mission: str, *args: str) -> dict[str, Any]:
    """``nexusmon plan MISSION ARGS --format json`` in ``root``; must succeed."""
    result = run_cli(["plan", mission, *args, "--format", "json"], root)
    assert result.exit_code == 0, result
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture
def make_workspace() -> Callable[..., Path]:
    """``make_workspace(tmp_path, {"missions/x.yaml": "..."})`` -> workspace root."""
    return write_workspace


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """``cli(["plan", "x"], cwd=root)`` -> (exit_code, stdout, stderr), in-process."""
    return run_cli


@pytest.fixture
def validate() -> Callable[..., list[str]]:
    """``validate(root)`` -> the error lines of ``nexusmon validate`` in ``root``."""
    return validate_errors


@pytest.fixture
def plan_json() -> Callable[..., dict[str, Any]]:
    """``plan_json(root, "mission", "-i", "k=v")`` -> the plan JSON document."""
    return plan_document


@pytest.fixture
def nexusmon_process() -> Callable[..., CliResult]:
    """``nexusmon_process(["validate"], cwd=root)`` -> (exit_code, stdout, stderr), a real process."""
    return run_process


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or write the real user's home or configuration."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in [k for k in os.environ if k.startswith("NEXUSMON_")]:
        monkeypatch.delenv(name)
