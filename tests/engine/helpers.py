"""Shared helpers for the engine tests: a real workspace driven through the real CLI.

Every call runs ``python -m nexusmon -C ROOT ...`` as a subprocess with an
environment free of the caller's ``NEXUSMON_*`` variables and a ``HOME``
inside the test's temporary directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from nexusmon.store.ledger import Ledger

TRACEBACK = "Traceback (most recent call last)"


class Result(NamedTuple):
    rc: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.out)
        return doc


class Workspace:
    """A temporary workspace with a private HOME and helpers to run nexusmon in it."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "ws"
        (self.root / "missions").mkdir(parents=True)
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.scratch = tmp_path / "scratch"
        self.scratch.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    # -- files ----------------------------------------------------------------
    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def lines(self, rel: str) -> list[str]:
        path = self.root / rel
        if not path.exists():
            return []
        return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]

    @property
    def state(self) -> Path:
        return self.root / ".nexusmon"

    @property
    def ledger_file(self) -> Path:
        return self.state / "ledger.db"

    def state_bytes(self) -> bytes:
        """Every byte nexusmon keeps in the state directory (ledger, WAL, vault)."""
        return b"\n".join(p.read_bytes() for p in sorted(self.state.rglob("*")) if p.is_file())

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        con = sqlite3.connect(str(self.ledger_file), timeout=30)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    # -- processes --------------------------------------------------------------
    def env(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """The caller's environment without NEXUSMON_*/GITHUB_*, HOME in the test's tmp_path;
        ``extra`` adds variables (None removes one)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUSMON_", "GITHUB_"))}
        env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "NO_COLOR": "1",
                "TERM": "dumb",
                "COLUMNS": "500",
                "PYTHONIOENCODING": "utf-8",
            }
        )
        for name, value in (extra or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "nexusmon", "-C", str(self.root), *args]

    def nx(
        self, *args: str, env: Mapping[str, str | None] | None = None, timeout: float = 60
    ) -> Result:
        done = subprocess.run(
            self.argv(*args),
            check=False,
            cwd=self.root,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            start_new_session=True,
        )
        result = Result(
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )
        assert TRACEBACK not in result.err, result.err
        return result

    def run(
        self,
        *args: str,
        rc: int = 0,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """`run ARGS --format json`, asserting the exit code; the run document."""
        result = self.nx("run", *args, "--format", "json", env=env, timeout=timeout)
        assert result.rc == rc, (
            f"exit {result.rc}, expected {rc}\n{result.err}\n{result.out[:3000]}"
        )
        return result.json()

    def show(self, ref: str = "last") -> dict[str, Any]:
        result = self.nx("show", ref, "--format", "json")
        assert result.rc == 0, result.err
        return result.json()

    def popen(
        self,
        *args: str,
        tag: str = "bg",
        env: Mapping[str, str | None] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start nexusmon in the background, in its own process group."""
        with (
            open(self.scratch / f"{tag}.out", "wb") as out,
            open(self.scratch / f"{tag}.err", "wb") as err,
        ):
            proc = subprocess.Popen(
                self.argv(*args),
                cwd=self.root,
                env=self.env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def output(self, tag: str) -> str:
        return "".join(
            (self.scratch / f"{tag}.{s}").read_text(encoding="utf-8", errors="replace")
            for s in ("out", "err")
        )

    def cleanup(self) -> None:
        for proc in self.procs:
            kill_group(proc.pid)
            proc.wait(timeout=10)

    # -- audit ------------------------------------------------------------------
    def audit_verify(self) -> None:
        """The audit chain verifies: through `nexusmon audit verify` once that command exists."""
        if importlib.util.find_spec("nexusmon.cli.audit") is not None:
            result = self.nx("audit", "verify")
            assert result.rc == 0, result.out + result.err
            return
        with Ledger(self.state) as ledger:
            assert ledger.verify_audit() is None


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def task(doc: dict[str, Any], task_id: str) -> dict[str, Any]:
    for t in doc["tasks"]:
        if t["id"] == task_id:
            found: dict[str, Any] = t
            return found
    raise AssertionError(f"no task {task_id!r} in {[t['id'] for t in doc['tasks']]}")


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {t["id"]: t["status"] for t in doc["tasks"]}
