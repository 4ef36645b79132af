"""The ``mission`` worker: run another mission of the workspace as a child run.

``with: {mission: ID, inputs: {...}}``. The child is a separate ``nexusmon run``
process sharing the parent's state directory; its run is linked to the parent
run and task in the ledger (``runs.parent_run_id`` / ``parent_task_id``).
Outputs: ``run_id``, ``status`` and the child's task outputs under ``tasks``.

What the parent hands the child, and why:

- ``NEXUSMON_MISSION_STACK``: the ids of the missions above the child. A child
  whose mission is already on it, or one more than :data:`MAX_DEPTH` runs deep,
  fails the task before anything starts ("mission cycle: ping -> pong -> ping"):
  without it a mission calling itself starts runners without end.
- ``NEXUSMON_PARENT_SECRETS``: the names of the parent's secrets (comma
  separated), whose values the child finds under those names in its environment
  (a runner hands its secrets to every task by name). The parent masks them in
  what it keeps of the child; for the child's own records its runner has to
  declare them as extra secrets, reading them with :func:`inherited_secret_names`.
- The inputs travel in a file of a private directory (0700, file 0600) under the
  state directory's ``tmp/``, removed when the task ends however it ends.
- The child runs through :mod:`nexusmon.child`, which leaves its pid beside the
  inputs. A timeout or a cancellation (Ctrl-C of the parent) stops the child the
  way Ctrl-C stops a run: SIGTERM, so it records ``interrupted`` and ends its own
  tasks, and SIGKILL only after :data:`CHILD_GRACE_S` (or a second Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import msgspec

from nexusmon.util.lazy import asyncio
from nexusmon.util.masking import Masker
from nexusmon.util.process import ProcessResult, run_process
from nexusmon.workers.base import Result, Task

PARENT_RUN_ENV = "NEXUSMON_PARENT_RUN"
PARENT_TASK_ENV = "NEXUSMON_PARENT_TASK"
MISSION_STACK_ENV = "NEXUSMON_MISSION_STACK"
PARENT_PID_ENV = "NEXUSMON_PARENT_PID"  # the child interrupts itself once this process is gone
PARENT_SECRETS_ENV = "NEXUSMON_PARENT_SECRETS"
CHILD_MODULE = "nexusmon.child"
MAX_DEPTH = 10  # runs in one chain, the top-level run included
CHILD_GRACE_S = 5.0  # from SIGTERM to SIGKILL: time to record `interrupted` and end its tasks


#: The failure kind of a task whose child run waits for approval: an operator's turn, not a
#: failure, so omens do not count it. `resume` of the parent continues that same child run.
HELD_KIND = "child_held"

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["mission"],
    "additionalProperties": False,
    "properties": {
        "mission": {"type": "string", "description": "Id of the mission to run as a child run."},
        "inputs": {"type": "object", "description": "Inputs for the child mission."},
    },
}


class _ChildTask(msgspec.Struct):
    # Optional, not `str | None`: msgspec evaluates these when decoding, also on Python 3.9.
    id: str
    status: str = ""
    error: Optional[str] = None  # noqa: UP045
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)


class _ChildRun(msgspec.Struct):
    """The part of the child's `run --format json` document the parent uses."""

    run_id: str
    status: str = ""
    error: Optional[str] = None  # noqa: UP045
    tasks: list[_ChildTask] = msgspec.field(default_factory=list)


class MissionWorker:
    name = "mission"
    capabilities: list[str] = []  # noqa: RUF012
    risk_level = "C"
    requires_approval = False
    params_schema: dict[str, Any] | None = PARAMS_SCHEMA

    async def execute(self, task: Task) -> Result:
        target = str(task.params["mission"])
        if "\x00" in target:  # it is a command-line argument of the child run
            return Result(False, error=f"mission {target!r} contains a NUL byte", failure_kind="mission")
        stack = (*mission_stack(os.environ), task.mission)
        refusal = nesting_problem(stack, target)
        if refusal is not None:
            return Result(False, error=refusal, failure_kind="mission_cycle")
        names = secret_names(task.env, task.secrets, inherited_secret_names(os.environ))
        secrets = (*task.secrets, *(task.env[name] for name in names))
        with _handoff_dir(task) as handoff:
            inputs_file, pid_file = handoff / "inputs.json", handoff / "pid"
            _write_private(inputs_file, json.dumps(dict(task.params.get("inputs") or {}), default=str))
            argv = [sys.executable, "-m", CHILD_MODULE, str(pid_file), "-C", str(task.workspace),
                    "run", target, "--inputs-file", str(inputs_file), "--format", "json"]
            # The parent's step summary lists this task; the child's own table would repeat it.
            env = {**{k: v for k, v in task.env.items() if k != "GITHUB_STEP_SUMMARY"},
                   PARENT_RUN_ENV: task.run_id, PARENT_TASK_ENV: task.id,
                   MISSION_STACK_ENV: ",".join(stack), PARENT_SECRETS_ENV: ",".join(names),
                   PARENT_PID_ENV: str(os.getpid())}
            # The child masks the secrets it is handed in its own JSON document; masking that
            # text again here would mangle it (a secret "2" or "status" is in every document).
            child = asyncio.ensure_future(run_process(
                argv, cwd=task.workspace, env=env, timeout=None, masker=Masker(secrets),
                stdout_masker=Masker(())))
            return await _supervise(child, pid_file, task.timeout, target)


def mission_stack(environ: Mapping[str, str]) -> list[str]:
    """The ids of the missions above this run (outermost first), as its parent handed them."""
    return [m for m in environ.get(MISSION_STACK_ENV, "").split(",") if m]


def inherited_secret_names(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the secrets a parent run declared to this run (their values are in ``environ``)."""
    return tuple(n for n in environ.get(PARENT_SECRETS_ENV, "").split(",") if n and n in environ)


def secret_names(env: Mapping[str, str], values: Sequence[str], inherited: Sequence[str]) -> list[str]:
    """The names under which the secret ``values`` (and the ``inherited`` names) are in ``env``."""
    wanted = {v for v in values if v}
    found = {name for name, value in env.items() if value in wanted and not name.startswith("NEXUSMON_")}
    return sorted(found.union(n for n in inherited if n in env))


def nesting_problem(stack: Sequence[str], target: str) -> str | None:
    """Why a child run of ``target`` must not start below ``stack``; None when it may.

    The stack is checked as well as the target: a target given as a path is not
    recognised as a mission id, but its run finds its own id on the stack.
    """
    chain = [*stack, target]
    for i, mission in enumerate(chain):
        if mission in chain[i + 1:]:
            again = chain.index(mission, i + 1)
            return "mission cycle: " + " -> ".join(chain[i:again + 1])
    if len(chain) > MAX_DEPTH:
        return f"missions nested more than {MAX_DEPTH} deep: " + " -> ".join(chain)
    return None


@contextlib.contextmanager
def _handoff_dir(task: Task) -> Iterator[Path]:
    """A private directory under the state directory's ``tmp/``, removed afterwards."""
    state_dir = task.env.get("NEXUSMON_STATE_DIR") or str(task.workspace / ".nexusmon")
    scratch = Path(state_dir) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="child-", dir=scratch))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


async def _supervise(
    child: asyncio.Future[ProcessResult], pid_file: Path, timeout: float | None, target: str,
) -> Result:
    """Wait for the child run; on a timeout or a cancellation, stop it first."""
    try:
        done = await asyncio.wait_for(asyncio.shield(child), timeout)
    except asyncio.TimeoutError:
        await _stop(child, pid_file)
        return _timed_out(timeout, child)
    except asyncio.CancelledError:
        await _stop(child, pid_file)
        raise
    return _result(target, done)


async def _stop(child: asyncio.Future[ProcessResult], pid_file: Path) -> None:
    """End the child run like Ctrl-C ends a run, and return once it is gone.

    Cancelled while waiting (a second Ctrl-C), it kills at once.
    """
    try:
        pid = _read_pid(pid_file)
        if pid is not None and not child.done():  # not reaped yet: the pid is still the child's
            _signal_group(pid, signal.SIGTERM)
            await asyncio.wait([child], timeout=CHILD_GRACE_S)
    finally:
        if not child.done():
            child.cancel()  # the process helper kills the whole group at once
        await asyncio.wait([child])


def _read_pid(path: Path) -> int | None:
    """The child's pid; None before it wrote it (then it has started nothing yet)."""
    try:
        return int(path.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _timed_out(timeout: float | None, child: asyncio.Future[ProcessResult]) -> Result:
    doc = None if child.cancelled() else _child_run(child.result().stdout)
    ended = f"; child run {doc.run_id} {doc.status}" if doc is not None else ""
    return Result(False, outputs=_outputs(doc), error=f"timed out after {timeout:g}s{ended}",
                  failure_kind="timeout")


def _result(target: str, done: ProcessResult) -> Result:
    doc = _child_run(done.stdout)
    if done.exit_code == 0:
        return Result(True, outputs=_outputs(doc), log=done.stderr, cpu_s=done.cpu_s,
                      peak_rss_kb=done.peak_rss_kb)
    why = _failure(doc) if doc is not None else _not_started(target, done)
    kind = HELD_KIND if doc is not None and doc.status == "awaiting_approval" else "child_run"
    return Result(False, outputs=_outputs(doc), error=why, failure_kind=kind,
                  log=done.stderr, cpu_s=done.cpu_s, peak_rss_kb=done.peak_rss_kb)


def _child_run(stdout: str) -> _ChildRun | None:
    """The child's run document; None when it printed none (it never started a run)."""
    try:
        return msgspec.json.decode(stdout.encode("utf-8"), type=_ChildRun)
    except msgspec.DecodeError:  # ValidationError included
        return None


def _outputs(doc: _ChildRun | None) -> dict[str, Any]:
    if doc is None:
        return {"run_id": None, "status": None, "tasks": {}}
    return {"run_id": doc.run_id, "status": doc.status,
            "tasks": {t.id: t.outputs for t in doc.tasks}}


def _failure(doc: _ChildRun) -> str:
    """Why a child run did not succeed, from its run document."""
    run = f"child run {doc.run_id}"
    if doc.status == "awaiting_approval":
        held = [f"'{t.id}'" for t in doc.tasks if t.status == "awaiting_approval"]
        tasks = f" for task{'s' if len(held) > 1 else ''} {', '.join(held)}" if held else ""
        return f"{run} is awaiting approval{tasks}"
    if doc.status == "interrupted":
        return f"{run} was interrupted"
    culprit = next((t for t in doc.tasks if t.status == doc.status), None)
    if doc.status in ("failed", "blocked"):
        detail = f"task '{culprit.id}': {culprit.error or doc.status}" if culprit else doc.error
        return f"{run} {'is blocked' if doc.status == 'blocked' else 'failed'}: {detail}"
    return f"{run} ended {doc.status}" + (f": {doc.error}" if doc.error else "")


def _not_started(target: str, done: ProcessResult) -> str:
    said = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "")
    said = said.strip().removeprefix("error: ") or done.error or f"exit code {done.exit_code}"
    return f"child mission '{target}' did not start: {said}"
