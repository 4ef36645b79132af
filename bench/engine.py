"""Execution speed: nexusmon against GNU make on the same generated DAGs, and noop throughput.

Usage: python bench/engine.py [--rounds 5] [--limit 120] [--only a,b,c,d] [--keep]

(a) 1,000 independent `true` tasks + a join, `--concurrency 2` vs `make -j2`
(b) a chain of 200 `true` tasks
(c) the up-to-date re-run of 1,000 tasks with `sources` vs make with nothing to do
(d) 1,000 and 10,000 `noop` tasks as a whole process; per-task time and peak RSS at 10,000

make and nexusmon are timed alternately (make, nexusmon, make, ...). Every
nexusmon run of (a), (b) and (d) gets a fresh state directory; (c) re-uses one
warmed state directory. Every run must exit 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from common import (
    BenchTimeout,
    Stats,
    alternate,
    banner,
    bench_env,
    ms,
    nexusmon_argv,
    print_table,
    run_timed,
    run_with_rss,
    temp_workspace,
    verdict,
    write,
)

JOBS = 2
FANOUT = 1000
CHAIN = 200
SOURCED = 1000
NOOPS = (1000, 10000)


@dataclass(frozen=True)
class Versus:
    """One nexusmon-vs-make case: both timed on the same DAG."""

    name: str
    make: Stats | None
    nexusmon: Stats | None
    max_ratio: float


@dataclass(frozen=True)
class Absolute:
    """One stand-alone measurement with its own target."""

    name: str
    value: str
    target: str
    ok: bool | None  # None: could not be measured


class Nexusmon:
    """Runs one mission with the real CLI; a fresh state directory per call unless `state`."""

    def __init__(self, exe: Sequence[str], root: Path, mission: str, limit: float,
                 extra: Sequence[str] = (), state: Path | None = None) -> None:
        self.exe, self.root, self.mission, self.limit = list(exe), root, mission, limit
        self.extra, self.state, self._serial = list(extra), state, count()

    def argv(self, state: Path) -> list[str]:
        return [*self.exe, "--state-dir", str(state), "run", self.mission, "--format", "json",
                *self.extra]

    def fresh_state(self) -> Path:
        if self.state is not None:
            return self.state
        base = self.root.parent / f"state-{self.root.name}"
        shutil.rmtree(base, ignore_errors=True)  # the previous run's ledger, outside the timing
        return base / str(next(self._serial))

    def __call__(self) -> float:
        return run_timed(self.argv(self.fresh_state()), self.root, timeout=self.limit)

    def with_rss(self) -> tuple[float, float]:
        return run_with_rss(self.argv(self.fresh_state()), self.root, timeout=self.limit)

    def statuses(self) -> dict[str, int]:
        """Task status counts of one (untimed) run, read from its JSON document."""
        state = self.fresh_state()
        done = subprocess.run(self.argv(state), cwd=self.root, env=bench_env(), capture_output=True,
                              text=True, check=True, timeout=self.limit)
        counts: dict[str, int] = {}
        for task in json.loads(done.stdout)["tasks"]:
            counts[task["status"]] = counts.get(task["status"], 0) + 1
        return counts


def make_runner(root: Path, limit: float) -> Callable[[], float]:
    return lambda: run_timed(["make", f"-j{JOBS}", "-s", "-C", str(root)], root, timeout=limit)


# --- generated DAGs: (mission text, Makefile text) -------------------------------------------

def fanout_dag(n: int) -> tuple[str, str]:
    ids = [f"t{i:04d}" for i in range(n)]
    mission = _mission_head("fanout", f"{n} independent tasks and a join")
    mission += "".join(f"  {t}: {{run: 'true'}}\n" for t in ids)
    mission += f"  join: {{worker: noop, needs: [{', '.join(ids)}]}}\n"
    rules = "".join(f"{t}:\n\t@true\n" for t in ids)
    phony = " ".join(ids)
    return mission, f".PHONY: all join {phony}\nall: join\njoin: {phony}\n\t@true\n{rules}"


def chain_dag(n: int) -> tuple[str, str]:
    ids = [f"t{i:04d}" for i in range(n)]
    mission = _mission_head("chain", f"a chain of {n} tasks")
    mission += f"  {ids[0]}: {{run: 'true'}}\n"
    mission += "".join(f"  {t}: {{needs: [{p}], run: 'true'}}\n" for p, t in zip(ids, ids[1:]))
    rules = f"{ids[0]}:\n\t@true\n" + "".join(f"{t}: {p}\n\t@true\n" for p, t in zip(ids, ids[1:]))
    return mission, f".PHONY: all {' '.join(ids)}\nall: {ids[-1]}\n{rules}"


def sourced_dag(n: int) -> tuple[str, str]:
    ids = [f"{i:04d}" for i in range(n)]
    mission = _mission_head("sourced", f"{n} tasks, one source and one output each")
    mission += "".join(
        f"  c{i}: {{sources: [src/{i}.txt], run: 'cp src/{i}.txt out/{i}.txt'}}\n" for i in ids
    )
    rules = "".join(f"out/{i}.txt: src/{i}.txt\n\tcp $< $@\n" for i in ids)
    outs = " ".join(f"out/{i}.txt" for i in ids)
    return mission, f".PHONY: all\nall: {outs}\n{rules}"


def noop_mission(n: int) -> str:
    return _mission_head(f"noop{n}", f"{n} noop tasks") + "".join(
        f"  t{i:05d}: {{worker: noop}}\n" for i in range(n)
    )


def _mission_head(mission: str, objective: str) -> str:
    return f"mission: {mission}\nobjective: {objective}\ntasks:\n"


def workspace(base: Path, name: str, dag: tuple[str, str]) -> Path:
    root = base / name
    write(root, f"missions/{name}.yaml", dag[0])
    write(root, "Makefile", dag[1])
    return root


# --- cases -------------------------------------------------------------------------------

def versus(name: str, make: Callable[[], float], nexusmon: Nexusmon, max_ratio: float,
           rounds: int, budget: float) -> Versus:
    banner(f"{name}: up to {rounds} alternating rounds")
    try:
        stats = alternate({"make": make, "nexusmon": nexusmon}, rounds, budget)
    except BenchTimeout as exc:
        banner(str(exc))
        return Versus(name, None, None, max_ratio)
    return Versus(name, stats["make"], stats["nexusmon"], max_ratio)


def case_fanout(base: Path, exe: Sequence[str], args: argparse.Namespace) -> Versus:
    root = workspace(base, "fanout", fanout_dag(FANOUT))
    nx = Nexusmon(exe, root, "fanout", args.limit, ["--concurrency", str(JOBS)])
    return versus(f"(a) {FANOUT} independent tasks + join, -j{JOBS}", make_runner(root, args.limit),
                  nx, 1.2, args.rounds, args.budget)


def case_chain(base: Path, exe: Sequence[str], args: argparse.Namespace) -> Versus:
    root = workspace(base, "chain", chain_dag(CHAIN))
    nx = Nexusmon(exe, root, "chain", args.limit, ["--concurrency", str(JOBS)])
    return versus(f"(b) chain of {CHAIN} tasks", make_runner(root, args.limit), nx, 1.5,
                  args.rounds, args.budget)


def case_sourced(base: Path, exe: Sequence[str], args: argparse.Namespace) -> Versus:
    root = workspace(base, "sourced", sourced_dag(SOURCED))
    for i in range(SOURCED):
        write(root, f"src/{i:04d}.txt", f"source {i}\n")
    (root / "out").mkdir()
    nx = Nexusmon(exe, root, "sourced", args.limit, ["--concurrency", str(JOBS)],
                  state=base / "state-sourced-warm")
    name = f"(c) up-to-date re-run, {SOURCED} sourced tasks"
    try:
        make_runner(root, args.limit)()
        banner(f"{name}: warm run statuses {nx.statuses()}, re-run statuses {nx.statuses()}")
    except BenchTimeout as exc:
        banner(str(exc))
        return Versus(name, None, None, 1.5)
    return versus(name, make_runner(root, args.limit), nx, 1.5, args.rounds, args.budget)


def case_noops(base: Path, exe: Sequence[str], args: argparse.Namespace) -> list[Absolute]:
    small, large = NOOPS
    first = noop_run(base, exe, small, args)
    rows = [Absolute(f"(d) {small} noop tasks, whole process", _seconds(first), "<= 300.0 ms",
                     None if first is None else first[0] <= 0.300)]
    return rows + large_rows(noop_run(base, exe, large, args), first, args.limit)


def large_rows(second: tuple[float, float] | None, first: tuple[float, float] | None,
               limit: float) -> list[Absolute]:
    """Rows for the 10,000-task run: whole time, per task, marginal per task, peak RSS."""
    small, large = NOOPS
    per_task = f"(d) per task at {large} (whole / {large})"
    if second is None:
        return [
            Absolute(f"(d) {large} noop tasks, whole process", f"> {limit:.0f} s", "-", False),
            Absolute(per_task, f"> {limit * 1000 / large:.1f} ms", "<= 0.30 ms", False),
            Absolute(f"(d) peak RSS at {large} tasks", "not measured (timeout)", "<= 300 MB", None),
        ]
    seconds, rss = second
    marginal = (seconds - first[0]) / (large - small) if first else float("nan")
    return [
        Absolute(f"(d) {large} noop tasks, whole process", ms(seconds), "-", None),
        Absolute(per_task, f"{seconds / large * 1000:.3f} ms", "<= 0.30 ms",
                 seconds / large <= 0.0003),
        Absolute(f"(d) marginal per task ({small}..{large})", f"{marginal * 1000:.3f} ms", "-",
                 None),
        Absolute(f"(d) peak RSS at {large} tasks", f"{rss:.0f} MB", "<= 300 MB", rss <= 300),
    ]


def noop_run(
    base: Path, exe: Sequence[str], n: int, args: argparse.Namespace,
) -> tuple[float, float] | None:
    """(best seconds, highest peak RSS in MB) of up to `rounds` fresh-state runs; None: timeout."""
    root = base / f"noop{n}"
    write(root, f"missions/noop{n}.yaml", noop_mission(n))
    nx = Nexusmon(exe, root, f"noop{n}", args.limit)
    banner(f"(d) {n} noop tasks: up to {args.rounds} rounds")
    try:
        runs = [nx.with_rss()]
        spent = runs[0][0]
        while len(runs) < args.rounds and spent + runs[0][0] <= args.budget:
            runs.append(nx.with_rss())
            spent += runs[-1][0]
    except BenchTimeout as exc:
        banner(str(exc))
        return None
    return min(r[0] for r in runs), max(r[1] for r in runs)


def _seconds(result: tuple[float, float] | None) -> str:
    return "timeout" if result is None else ms(result[0])


# --- report ------------------------------------------------------------------------------

def versus_row(v: Versus, limit: float) -> list[str]:
    target = f"<= {v.max_ratio:.1f}x"
    if v.make is None or v.nexusmon is None:
        return [v.name, "0", "-", "-", f"> {limit:.0f} s", "-", "-", target, "MISS"]
    ratio = v.nexusmon.best / v.make.best
    median_ratio = v.nexusmon.median / v.make.median
    return [v.name, str(v.make.n), ms(v.make.best), ms(v.make.median), ms(v.nexusmon.best),
            ms(v.nexusmon.median), f"{ratio:.2f}x / {median_ratio:.2f}x", target,
            verdict(ratio <= v.max_ratio)]


def absolute_row(a: Absolute) -> list[str]:
    return [a.name, a.value, a.target, "info" if a.ok is None and a.target == "-" else
            ("n/a" if a.ok is None else verdict(a.ok))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per case, roughly")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before a run is killed")
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated cases to run")
    parser.add_argument("--keep", action="store_true", help="keep the generated workspaces")
    args = parser.parse_args()
    if shutil.which("make") is None:
        parser.error("GNU make is required")
    exe = nexusmon_argv()
    banner(f"nexusmon executable: {' '.join(exe)}")
    chosen = set(args.only.split(","))
    compare = [("a", case_fanout), ("b", case_chain), ("c", case_sourced)]
    with temp_workspace("engine", keep=args.keep) as base:
        rows = [versus_row(fn(base, exe, args), args.limit) for key, fn in compare if key in chosen]
        absolute = case_noops(base, exe, args) if "d" in chosen else []
    if rows:
        print_table(["case", "n", "make best", "make median", "nexusmon best", "nexusmon median",
                     "ratio best / median", "target", "ok?"], rows)
    if absolute:
        print()
        print_table(["case", "measured", "target", "ok?"], [absolute_row(a) for a in absolute])


if __name__ == "__main__":
    main()
