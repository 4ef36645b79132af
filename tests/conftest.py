"""Shared fixtures: sample workspaces written as real files, and the real CLI.

``cli(args, cwd)`` runs ``nexusmon ARGS`` in-process (see ``cli_runner``); ``nexusmon_process`` runs the
installed module as a subprocess for the few checks that need a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import pytest
from cli_runner import CliResult, PathLike, run_cli

TRACEBACK = "Traceback (most recent call last)"


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
