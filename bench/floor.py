"""The interpreter's own floor under engine.py's cases (a) and (b), against GNU make.

Usage: python bench/floor.py [--rounds 5] [--budget 60] [--limit 120] [--python PATH]

Three Python programs, each a whole process like `nexusmon run`, on the same
DAGs as engine.py (a) and (b), timed alternately with `make`:

- spawn loop: only `os.posix_spawnp("true")` and `os.wait`, keeping as many
  children running as make does. No ledger, no audit, no output capture, no
  imports beyond `os`: what no runner written in Python can go below.
- imports: the libraries every `nexusmon run` needs (click, PyYAML, asyncio,
  sqlite3, msgspec, json, hashlib) and nothing else.
- both: the imports, then the spawn loop.

The table prints each as a ratio to make, next to the engine targets (a)
<= 1.2x and (b) <= 1.5x, and what is left of the target once the floor is
paid: the time a runner has for parsing, compiling, governing, capturing and
recording every task. The interpreter is the one that runs nexusmon (from
the executable's `#!` line) unless `--python` names another.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from common import (
    Stats,
    alternate,
    banner,
    ms,
    nexusmon_argv,
    print_table,
    run_timed,
    temp_workspace,
)
from engine import CHAIN, FANOUT, JOBS, chain_dag, fanout_dag, make_runner, workspace

IMPORTS = "import click, yaml, asyncio, sqlite3, msgspec, json, hashlib\n"

# Keep `jobs` children running until `n` have run, reaping each as it ends (make -jN's loop).
SPAWN_LOOP = """\
import os, sys
n, jobs = int(sys.argv[1]), int(sys.argv[2])
argv, env, running, started = ["true"], dict(os.environ), 0, 0
while started < n or running:
    while running < jobs and started < n:
        os.posix_spawnp("true", argv, env)
        running, started = running + 1, started + 1
    pid, status = os.wait()
    if status:
        sys.exit(f"true exited {status}")
    running -= 1
"""

CASES = (
    # folder, name, tasks, jobs, engine target
    ("fanout", f"(a) {FANOUT} independent tasks, -j{JOBS}", FANOUT, JOBS, 1.2),
    ("chain", f"(b) chain of {CHAIN} tasks", CHAIN, 1, 1.5),
)


def interpreter(explicit: str | None) -> str:
    """The Python that runs nexusmon: its executable's `#!` line, else this one."""
    if explicit:
        return explicit
    exe = Path(nexusmon_argv()[0])
    try:
        first = exe.read_bytes().split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return sys.executable
    return first[2:].strip() if first.startswith("#!") and "python" in first else sys.executable


def programs(python: str, root: Path, tasks: int, jobs: int, limit: float) -> dict[str, Callable[[], float]]:
    def program(code: str) -> Callable[[], float]:
        argv = [python, "-c", code, str(tasks), str(jobs)]
        return lambda: run_timed(argv, root, timeout=limit)

    # make runs the join (a) / the chain's order (b) itself; the loop starts the same number
    # of `true` processes with the same parallelism, which is all a DAG of phony targets costs.
    return {
        "make": make_runner(root, limit),
        "spawn loop": program(SPAWN_LOOP),
        "imports": program(IMPORTS),
        "both": program(IMPORTS + SPAWN_LOOP),
    }


def rows_of(name: str, target: float, stats: dict[str, Stats]) -> list[list[str]]:
    make = stats["make"].best
    rows = [[name, "make", ms(make), "1.00x", f"{ms(make * target)} at {target}x", ""]]
    for label in ("spawn loop", "imports", "both"):
        best = stats[label].best
        left = make * target - best
        rows.append(["", label, ms(best), f"{best / make:.2f}x", "", ms(left)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before a run is killed")
    parser.add_argument("--python", help="interpreter to measure (default: nexusmon's)")
    args = parser.parse_args()
    python = interpreter(args.python)
    banner(f"interpreter: {python}")
    rows: list[list[str]] = []
    with temp_workspace("floor") as base:
        for (folder, name, tasks, jobs, target), dag in zip(CASES, (fanout_dag(FANOUT), chain_dag(CHAIN))):
            root = workspace(base, folder, dag)
            banner(f"{name}: up to {args.rounds} alternating rounds")
            stats = alternate(programs(python, root, tasks, jobs, args.limit), args.rounds, args.budget)
            rows.extend(rows_of(name, target, stats))
    print_table(["case", "program", "best", "vs make", "engine target", "left for the runner"], rows)


if __name__ == "__main__":
    main()
