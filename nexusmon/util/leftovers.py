"""Processes a dead runner left behind: found by their run id, stopped before a resume.

Tasks run in sessions of their own (a timeout must reach the whole group), so
when the runner dies without a word (SIGKILL, a power cut of the runner alone)
its task processes and their children live on. Every one of them starts with
``NEXUSMON_RUN_ID`` and ``NEXUSMON_TASK_ID`` in its environment, and what they
start inherits both: that is how they are found again.

:func:`stop_leftovers` scans ``/proc/<pid>/environ`` of the current user's
processes for ``NEXUSMON_RUN_ID=<run id>``, sends SIGTERM to their process
groups, waits up to :data:`GRACE_S` for them to end, then sends SIGKILL to
what remains. It never signals this process, its ancestors or their process
groups (a ``resume`` typed in a task's shell must not stop that shell). Only
Linux has such a ``/proc``: elsewhere nothing is found.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence

from msgspec import Struct

RUN_ID_ENV = "NEXUSMON_RUN_ID"
TASK_ID_ENV = "NEXUSMON_TASK_ID"
GRACE_S = 5.0  # from SIGTERM to SIGKILL, as a child run gets (a runner records `interrupted`)
_KILLED_S = 1.0  # after SIGKILL: how long to wait for the kernel to end them
_POLL_S = 0.05
_PROC = "/proc"
SUPPORTED = sys.platform.startswith("linux")


class Leftover(Struct, frozen=True):
    """A live process of a run: its pid, its process group and the task it belongs to."""

    pid: int
    pgid: int
    task_id: str | None


def stop_leftovers(run_id: str, grace: float = GRACE_S) -> list[Leftover]:
    """Stop the processes still running for ``run_id``; the ones found (empty: none, or no /proc)."""
    found = find_leftovers(run_id)
    if not found:
        return []
    spared = _spared_groups()
    _signal(found, signal.SIGTERM, spared)
    left = _wait_gone(run_id, grace)
    if left:
        _signal(left, signal.SIGKILL, spared)
        _wait_gone(run_id, _KILLED_S)
    return found


def find_leftovers(run_id: str) -> list[Leftover]:
    """The current user's live processes started for ``run_id``, this one and its ancestors excepted."""
    if not SUPPORTED:
        return []
    needle = f"{RUN_ID_ENV}={run_id}".encode()
    skip = _ancestry()
    uid = os.getuid()
    found = []
    for pid in sorted(_pids()):
        if pid in skip:
            continue
        env = _environ(pid, uid)
        if env is None or needle not in env or needle not in env.split(b"\0"):  # a zombie's reads empty
            continue
        pgid = _pgid(pid)
        if pgid is not None:
            found.append(Leftover(pid, pgid, _task_id(env)))
    return found


def describe(run_id: str, stopped: Sequence[Leftover]) -> str:
    """One line for the user: ``stopped 2 processes left running by run R (task 'build': pids 7, 9)``."""
    by_task: dict[str | None, list[str]] = {}
    for leftover in stopped:
        by_task.setdefault(leftover.task_id, []).append(str(leftover.pid))
    parts = [(f"task '{task}': " if task is not None else "")
             + ("pid " if len(pids) == 1 else "pids ") + ", ".join(pids)
             for task, pids in by_task.items()]
    count = f"{len(stopped)} process" + ("" if len(stopped) == 1 else "es")
    return f"stopped {count} left running by run {run_id} ({'; '.join(parts)})"


def _signal(leftovers: Sequence[Leftover], sig: int, spared: set[int]) -> None:
    """``sig`` to each leftover's group; to the process alone when the group is one of ours."""
    groups = {lo.pgid for lo in leftovers if lo.pgid not in spared}
    lone = {lo.pid for lo in leftovers if lo.pgid in spared}
    for target, kill in [*((g, os.killpg) for g in groups), *((p, os.kill) for p in lone)]:
        try:
            kill(target, sig)
        except (ProcessLookupError, PermissionError):  # ended meanwhile, or not ours to stop
            pass


def _wait_gone(run_id: str, within: float) -> list[Leftover]:
    """What still runs for ``run_id`` after at most ``within`` seconds (empty as soon as nothing)."""
    deadline = time.monotonic() + within
    while True:
        left = find_leftovers(run_id)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(_POLL_S)


def _pids() -> Iterator[int]:
    try:
        names = os.listdir(_PROC)
    except OSError:
        return
    yield from (int(name) for name in names if name.isdigit())


def _environ(pid: int, uid: int) -> bytes | None:
    """The environment ``pid`` started with; None when it is not ours, gone, or hidden."""
    try:
        if os.stat(f"{_PROC}/{pid}").st_uid != uid:
            return None
        with open(f"{_PROC}/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _pgid(pid: int) -> int | None:
    fields = _stat_fields(pid)  # state, ppid, pgrp, ...
    return int(fields[2]) if fields and len(fields) > 2 else None


def _ancestry() -> set[int]:
    """This process and its ancestors."""
    chain, pid = set(), os.getpid()
    while pid > 1 and pid not in chain:
        chain.add(pid)
        fields = _stat_fields(pid)
        pid = int(fields[1]) if fields and len(fields) > 1 else 0
    return chain


def _spared_groups() -> set[int]:
    """The process groups of this process and its ancestors: never signalled as a whole."""
    groups = {_pgid(pid) for pid in _ancestry()}
    return {g for g in groups if g is not None} | {os.getpgrp()}


def _task_id(env: bytes) -> str | None:
    prefix = f"{TASK_ID_ENV}=".encode()
    for entry in env.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode("utf-8", "replace")
    return None
