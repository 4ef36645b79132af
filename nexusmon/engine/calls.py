"""Calling a worker for one attempt: whatever it raises or returns becomes a sound :class:`Result`.

A plugin is code nexusmon does not control: it may raise anything, return
something that is not a ``Result``, or a ``Result`` whose fields have the wrong
types or hold objects JSON cannot store. Each of these fails the attempt with a
message naming the worker, instead of crashing the runner or storing text
that was never masked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from msgspec import structs

from nexusmon.util.jsonvalue import plain, storable
from nexusmon.util.lazy import asyncio
from nexusmon.workers.base import Result, Task, WorkerPlugin
from nexusmon.workers.shell import ShellWorker


async def call_worker(worker: WorkerPlugin, job: Task, timeout: float | None) -> Result:
    """The attempt's result: whatever the worker raises or returns wrong fails the attempt.

    The worker runs in a task of its own, so that a ``CancelledError`` it raises
    (a failure) is told apart from a cancellation of this attempt (Ctrl-C, the
    run's time limit, a failure elsewhere), which propagates. Python 3.9 has no
    ``Task.cancelling()``.
    """
    begun = time.monotonic()
    call = asyncio.ensure_future(_guarded(worker, job))
    try:
        done, _ = await asyncio.wait({call}, timeout=timeout)
    except asyncio.CancelledError:
        await _cancel(call)
        raise
    if not done:
        await _cancel(call)
        return Result(False, error=f"timed out after {timeout:g}s", failure_kind="timeout")
    returned, raised = call.result()
    if isinstance(raised, KeyboardInterrupt):  # the attempt's caller stops the run, as Ctrl-C does
        raise raised
    took = time.monotonic() - begun
    if timeout is not None and took > timeout:
        # It never gave the event loop a chance to stop it (a blocking call in `async def`).
        return Result(False, error=f"timed out after {timeout:g}s (the worker returned after {took:.1f}s: "
                                   "blocking calls in execute() cannot be stopped sooner)",
                      failure_kind="timeout")
    if isinstance(raised, SystemExit):  # ends the worker's task, not the runner
        return _broken(job, f"called sys.exit({raised.code!r})")
    if raised is not None:
        return _broken(job, f"raised {_describe(raised)}")
    return _checked(returned, job)


def _checked(returned: Any, job: Task) -> Result:
    """``returned`` with its outputs as plain JSON, or a failure saying what is wrong with it."""
    if not isinstance(returned, Result):
        return _broken(job, f"returned {type(returned).__name__}, not a Result")
    problem = result_problem(returned)
    if problem:
        return _broken(job, f"returned a Result whose {problem}")
    try:
        outputs = plain(returned.outputs)
    except RecursionError:
        return _broken(job, "returned outputs nested too deep to store (do they contain themselves?)")
    except Exception as exc:  # noqa: BLE001 - an output object whose str() raises
        return _broken(job, f"returned outputs that cannot be stored: {_describe(exc)}")
    return structs.replace(returned, outputs=outputs, log=storable(returned.log),
                           **{name: storable(text) for name in ("error", "failure_kind")
                              if isinstance(text := getattr(returned, name), str)})


def result_problem(result: Result) -> str | None:
    """What is wrong with the types of ``result``'s fields, or None."""
    if not isinstance(result.ok, bool):
        return f"ok is {type(result.ok).__name__}, not true or false"
    if not isinstance(result.outputs, Mapping):
        return f"outputs is {type(result.outputs).__name__}, not a mapping"
    for name in ("error", "failure_kind"):
        value = getattr(result, name)
        if value is not None and not isinstance(value, str):
            return f"{name} is {type(value).__name__}, not a string or None"
    if not isinstance(result.log, str):
        return f"log is {type(result.log).__name__}, not a string"
    for name in ("cost_usd", "cpu_s", "peak_rss_kb"):
        value = getattr(result, name)
        if not _is_amount(value, whole=name == "peak_rss_kb"):
            kind = "a whole number" if name == "peak_rss_kb" else "a finite number"
            shown = repr(value) if isinstance(value, (int, float)) else type(value).__name__
            return f"{name} is {shown}, not {kind} >= 0"
    return None


def _is_amount(value: Any, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if whole and not isinstance(value, int):
        return False
    return math.isfinite(value) and value >= 0


def _broken(job: Task, what: str) -> Result:
    return Result(False, error=f"worker '{job.worker}' {what}", failure_kind="exception")


async def call_shell(worker: ShellWorker, job: Task) -> Result:
    """The built-in shell worker, awaited directly: a cancellation is always a real one.

    It enforces the timeout itself, on the whole process group, and prints nothing
    in-process: no capture and no guard task (each costs event-loop turns per task).
    """
    try:
        return await worker.execute(job)
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - still a task failure, never a runner crash
        return Result(False, error=f"worker 'shell' raised {_describe(exc)}", failure_kind="exception")


async def _guarded(worker: WorkerPlugin, job: Task) -> tuple[Any, BaseException | None]:
    """(what ``execute`` returned, None) or (None, what it raised).

    Nothing escapes: a ``KeyboardInterrupt`` leaving this task would leave the event loop
    itself. :func:`call_worker` raises it again in the attempt, which stops the run.
    """
    try:
        return await worker.execute(job), None
    except BaseException as exc:  # noqa: BLE001 - a plugin bug is a task failure, not a runner crash
        return None, exc


async def _cancel(call: asyncio.Future[Any]) -> None:
    """Cancel the worker's task and wait until it has cleaned up."""
    call.cancel()
    await asyncio.wait({call})


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a plugin's exception whose __str__ fails
        message = ""
    return storable(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
