"""Shared helpers for the nexusmon benchmarks: workspaces, timing, the real CLI, tables.

Every measurement runs the installed `nexusmon` executable as a subprocess, the
way a user or CI job does, and times it with `time.perf_counter`. A run whose exit
code is not the expected one is an error, never a timing.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

GNU_TIME = "/usr/bin/time"


class BenchError(RuntimeError):
    """A benchmarked command failed: its timing would be meaningless."""


class BenchTimeout(BenchError):
    """A benchmarked command ran longer than its time limit (and was killed)."""

    def __init__(self, argv: Sequence[str], limit: float) -> None:
        super().__init__(f"{' '.join(argv)} still running after {limit:.0f} s")
        self.limit = limit


@dataclass(frozen=True)
class Stats:
    """Wall-clock samples of one case, in seconds."""

    samples: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def nexusmon_argv() -> list[str]:
    """The real nexusmon executable: NEXUSMON_BIN, else PATH, skipping pyenv's bash shim."""
    raw = os.environ.get("NEXUSMON_BIN", "").split()
    if raw:
        return raw
    found = shutil.which("nexusmon")
    if found is None:
        return [sys.executable, "-m", "nexusmon"]
    return [_unshimmed(found)]


def _unshimmed(path: str) -> str:
    """pyenv puts a bash wrapper on PATH that costs ~40 ms per call; measure the real script."""
    if "/shims/" not in path or shutil.which("pyenv") is None:
        return path
    done = subprocess.run(["pyenv", "which", "nexusmon"], capture_output=True, text=True,
                          check=False)
    real = done.stdout.strip()
    return real if done.returncode == 0 and real else path


@contextmanager
def temp_workspace(name: str, keep: bool = False) -> Iterator[Path]:
    """A throw-away directory; `keep` leaves it on disk for profiling."""
    root = Path(tempfile.mkdtemp(prefix=f"nexusmon-bench-{name}-"))
    try:
        yield root
    finally:
        if keep:
            print(f"kept workspace {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without anything that would move state or colour output."""
    dropped = ("NEXUSMON_", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def run_timed(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, expect_rc: int = 0,
    timeout: float | None = None,
) -> float:
    """Seconds one subprocess took, stdout discarded; a wrong exit code raises BenchError.

    The child leads its own process group so that a timeout ends it and everything it
    started (GNU time's child included), not just the direct child.
    """
    start = time.perf_counter()
    with subprocess.Popen(list(argv), cwd=cwd, env=dict(env or bench_env()), start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        try:
            _, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise BenchTimeout(argv, timeout or 0.0) from None
    elapsed = time.perf_counter() - start
    if child.returncode != expect_rc:
        tail = err.decode(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(argv)} exited {child.returncode} (expected {expect_rc}) "
                         f"in {cwd}\n{tail}")
    return elapsed


def run_with_rss(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one subprocess, measured by GNU time when present."""
    if not Path(GNU_TIME).exists():
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        seconds = run_timed(argv, cwd, env, timeout=timeout)
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return seconds, (after / 1024 if after > before else float("nan"))
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        timed = [GNU_TIME, "-f", "%M", "-o", out.name, *argv]
        seconds = run_timed(timed, cwd, env, timeout=timeout)
        return seconds, int(out.read().strip().splitlines()[-1]) / 1024


def sample(fn: Callable[[], float], rounds: int, budget: float = 60.0) -> Stats:
    """Up to `rounds` timings of `fn` after one untimed warm-up (page cache, .pyc files);
    fewer when the warm-up shows that `rounds` would not fit in `budget` seconds."""
    warm = fn()
    if warm * 2 > budget:
        return Stats((warm,))  # too slow to repeat: the warm-up is the only sample
    return Stats(tuple(fn() for _ in range(_fitting(rounds, warm, budget))))


def alternate(
    cases: Mapping[str, Callable[[], float]], rounds: int, budget: float = 120.0,
) -> dict[str, Stats]:
    """Time several cases interleaved (a, b, a, b, ...) so drift hits all of them alike."""
    warm = sum(fn() for fn in cases.values())
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(_fitting(rounds, warm, budget)):
        for name, fn in cases.items():
            samples[name].append(fn())
    return {name: Stats(tuple(values)) for name, values in samples.items()}


def _fitting(rounds: int, one_round: float, budget: float) -> int:
    return max(1, min(rounds, int(budget // max(one_round, 1e-9))))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned table; first column left-aligned, the rest right-aligned."""
    table = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[c]) for r in table) for c in range(len(headers))]
    for n, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def banner(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)
