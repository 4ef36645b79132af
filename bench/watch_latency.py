"""Watch-mode latency: from saving a source file to the first task starting.

Usage: python bench/watch_latency.py [--edits 20] [--keep]

Starts the real `nexusmon watch` as a subprocess in a temporary workspace,
rewrites a declared source file N times and, for each edit, times the delay
until watch reports that the task reading it started (its `start` progress
line). Target: median <= 200 ms.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from common import banner, bench_env, ms, nexusmon_argv, print_table, temp_workspace, verdict, write

TARGET_MEDIAN_S = 0.200
WAIT_S = 20.0
MISSION = """\
mission: latency
objective: measure watch-mode latency
tasks:
  stamp:
    sources: [src/in.txt]
    run: cat src/in.txt > stamp.txt
  other:
    sources: [src/other.txt]
    run: cat src/other.txt > other.txt
"""
STARTED = re.compile(r"^\s*start\s+stamp\b")
FINISHED = re.compile(r"^run \S+ of latency: ")

Line = tuple[float, str]


def reader(stream: IO[str], lines: queue.Queue[Line]) -> None:
    """Timestamp every line watch prints, as it arrives."""
    for line in stream:
        lines.put((time.perf_counter(), line.rstrip("\n")))


def wait_for(lines: queue.Queue[Line], pattern: re.Pattern[str], proc: subprocess.Popen[str]) -> float:
    """When the next line matching ``pattern`` arrived."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            at, text = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                raise SystemExit(f"nexusmon watch exited with status {proc.returncode}")
            continue
        if pattern.search(text):
            return at
    raise SystemExit(f"no line matching {pattern.pattern!r} within {WAIT_S:.0f} s")


def measure(root: Path, edits: int) -> list[float]:
    proc = subprocess.Popen(
        [*nexusmon_argv(), "watch", "latency"], cwd=root, env=bench_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    lines: queue.Queue[Line] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        wait_for(lines, FINISHED, proc)  # the first run
        delays = []
        for n in range(edits):
            time.sleep(0.15)  # let the previous run's writes settle
            start = time.perf_counter()
            write(root, "src/in.txt", f"edit {n}\n")
            delays.append(wait_for(lines, STARTED, proc) - start)
            wait_for(lines, FINISHED, proc)
        return delays
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="leave the workspace on disk")
    args = parser.parse_args(argv)
    with temp_workspace("watch", keep=args.keep) as root:
        write(root, "missions/latency.yaml", MISSION)
        write(root, "src/in.txt", "start\n")
        write(root, "src/other.txt", "unchanged\n")
        banner(f"{args.edits} edits of src/in.txt under `nexusmon watch` in {root}")
        delays = measure(root, args.edits)
    median = statistics.median(delays)
    print_table(
        ["case", "edits", "min", "median", "p90", "max", "target", ""],
        [["save -> task start", str(len(delays)), ms(min(delays)), ms(median), ms(percentile(delays, 0.9)),
          ms(max(delays)), f"median <= {ms(TARGET_MEDIAN_S)}", verdict(median <= TARGET_MEDIAN_S)]],
    )
    return 0 if median <= TARGET_MEDIAN_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
