"""The ``python`` worker: calls a Python function in-process.

Parameters (``with``): ``function: "package.module:function"``; every other key
is passed as a keyword argument::

    worker: python
    with: {function: "tools.release:bump", part: minor}

The function runs in the runner's process, so in the runner's working directory
(wherever ``nexusmon`` was started, not necessarily the workspace root) and
environment: ``with.cwd`` is refused (a validation error) rather than ignored.
Pass ``workspace: "{{ workspace }}"`` to a function that needs the root.

The workspace root is put on ``sys.path`` so workspace modules import. A module
stays imported for the life of the process until a workspace module file
changes (size or modification time): then every workspace module is imported
afresh, so a long-running ``watch`` runs (and caches) the code on disk, not the
code it first imported.

Sync functions run in a thread, coroutine functions are awaited. A returned
dict becomes the outputs; any other value becomes ``{"result": value}``
(values that are not JSON become their ``str``). An exception fails the task
with its one-line message; the traceback goes to the log. The task timeout is
enforced, but a thread cannot be killed: a timed-out sync function keeps
running in the background until it returns.

What the function writes to ``sys.stdout``/``sys.stderr`` goes to the task's log
(see :mod:`nexusmon.util.capture`); what a timed-out function writes later is dropped.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.machinery
import inspect
import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from nexusmon.util.capture import routed_streams
from nexusmon.util.lazy import asyncio
from nexusmon.util.masking import Masker
from nexusmon.workers.base import Result, Task

NO_CWD = (
    "with.cwd is not supported by the python worker: functions run in the runner's process "
    "and working directory (pass a path as an argument instead)"
)

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "function": {
            "type": "string",
            "pattern": r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$",
        },
        "cwd": False,  # see NO_CWD
    },
    "required": ["function"],
}


class PythonWorker:
    """Calls ``module:function`` with the task's parameters as keyword arguments."""

    name = "python"
    capabilities: list[str] = []  # noqa: RUF012 - the plugin contract's attribute
    risk_level = "D"
    requires_approval = False
    params_schema: dict[str, Any] | None = PARAMS_SCHEMA

    async def execute(self, task: Task) -> Result:
        masker = Masker(task.secrets)
        if "cwd" in task.params:  # only reached when the parameters were not validated
            return _failed(masker, "cwd", NO_CWD)
        spec = str(task.params.get("function", ""))
        try:
            func = load_function(spec, task.workspace)
        except (ImportError, AttributeError, ValueError, TypeError) as exc:
            return _failed(masker, "not_found", f"cannot load {spec!r}: {_one_line(exc)}", exc)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - importing runs the module's own code
            return _failed(masker, "exception", f"importing {spec!r}: {_one_line(exc)}", exc)
        kwargs = {k: v for k, v in task.params.items() if k != "function"}
        job = asyncio.ensure_future(_call(func, kwargs))
        try:
            done, _ = await asyncio.wait({job}, timeout=task.timeout)
        except asyncio.CancelledError:
            job.cancel()
            raise
        if not done:
            job.cancel()
            return _failed(masker, "timeout", f"timed out after {task.timeout:g}s")
        if job.cancelled():
            return _failed(masker, "exception", "the function was cancelled")
        raised = job.exception()
        if isinstance(raised, FunctionInterrupted):
            raise KeyboardInterrupt
        if raised is not None:
            return _failed(masker, "exception", _one_line(raised), raised)
        return Result(ok=True, outputs=masker.mask_value(as_outputs(job.result())))


#: Workspace roots this process put on sys.path (a test suite or a library user runs several).
_ROOTS: set[str] = set()


def _refuse_shadowed(module_name: str, workspace: Path) -> None:
    """Before a workspace module is imported: one named like a standard or installed module
    (which wins, sys.path holding the workspace last) is refused by name, rather than its
    function reported missing from a module the user never wrote. A module of that name
    imported from another workspace root earlier in this process is forgotten."""
    top = module_name.split(".")[0]
    if not ((workspace / f"{top}.py").is_file() or (workspace / top / "__init__.py").is_file()):
        return
    roots = {os.path.realpath(r) for r in _ROOTS}
    elsewhere = [p for p in sys.path if os.path.realpath(p or os.curdir) not in roots]
    found = importlib.machinery.PathFinder.find_spec(top, elsewhere)
    if top in sys.builtin_module_names or found is not None:
        origin = found.origin if found is not None and found.origin else "built in"
        raise ImportError(f"workspace module '{top}' has the name of a standard or installed "
                          f"module ({origin}): rename it")
    cached = getattr(sys.modules.get(top), "__file__", None)
    if cached is not None and not Path(cached).resolve().is_relative_to(workspace.resolve()):
        for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
            del sys.modules[name]


def load_function(spec: str, workspace: Path) -> Callable[..., Any]:
    """The callable named ``module:function`` (dotted attributes allowed)."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ValueError("expected 'module:function'")
    root = str(workspace)
    if root not in sys.path:
        # Last: a workspace file named like a standard or installed module (http.py, yaml.py)
        # must not replace it for nexusmon itself and every later task.
        sys.path.append(root)
    _ROOTS.add(root)
    _forget_edited_modules(root)
    _refuse_shadowed(module_name, workspace)
    target: Any = importlib.import_module(module_name)
    _note_loaded_modules(root)
    for attr in attr_path.split("."):
        target = getattr(target, attr)
    if not callable(target):
        raise TypeError(f"{attr_path} is not callable")
    return target  # type: ignore[no-any-return]


#: (size, mtime_ns) of each workspace module file when it was imported.
_LOADED: dict[str, tuple[int, int]] = {}


def _workspace_modules(root: str) -> list[tuple[str, str]]:
    """(name, file) of every imported module whose file lies in the workspace."""
    prefix = os.path.join(root, "")
    return [(name, file) for name, module in list(sys.modules.items())
            if isinstance(file := getattr(module, "__file__", None), str) and file.startswith(prefix)]


def _stat(file: str) -> tuple[int, int] | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _note_loaded_modules(root: str) -> None:
    for _name, file in _workspace_modules(root):
        _LOADED.setdefault(file, _stat(file) or (-1, -1))


def _forget_edited_modules(root: str) -> None:
    """When any workspace module file changed since it was imported, drop every workspace
    module: one that imported a name from the edited one would keep the old object."""
    modules = _workspace_modules(root)
    if all(_LOADED.get(file) in (None, _stat(file)) for _name, file in modules):
        return
    for name, file in modules:
        sys.modules.pop(name, None)
        _LOADED.pop(file, None)
    importlib.invalidate_caches()


def as_outputs(value: Any) -> dict[str, Any]:
    """Task outputs for a return value: a dict as is, else ``{"result": value}``."""
    try:
        plain = json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):  # circular structures, NaN keys, ...
        plain = str(value)
    if isinstance(plain, dict):
        return plain
    return {"result": plain}


class FunctionExited(Exception):
    """The function called ``sys.exit()``: its task fails, the runner goes on."""


class FunctionInterrupted(Exception):
    """The function raised ``KeyboardInterrupt``: raised again by the worker, it stops the run
    as Ctrl-C does (out of the helper task it would leave the event loop itself)."""


async def _call(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        if inspect.iscoroutinefunction(func):
            return await func(**kwargs)
        result = await _on_daemon_thread(func, kwargs)
        if inspect.isawaitable(result):
            return await result
        return result
    except SystemExit as exc:  # would otherwise escape the event loop and end the run
        raise FunctionExited(f"the function called sys.exit({exc.code!r})") from exc
    except KeyboardInterrupt as exc:
        raise FunctionInterrupted from exc


async def _on_daemon_thread(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``asyncio.to_thread`` on a daemon thread of its own. A thread cannot be stopped, and
    the event loop's pool threads are waited for when the run ends: a function that never
    returns kept a timed-out or interrupted run `running` for good. This thread is left
    behind instead (what it writes later is dropped) and ends with the process."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()  # the task's output capture, as to_thread passes it

    def call() -> None:
        try:
            result = context.run(_in_thread, func, kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, SystemExit included
            _hand_over(loop, future.set_exception, future, exc)
        else:
            _hand_over(loop, future.set_result, future, result)

    threading.Thread(target=call, name="nexusmon-python-task", daemon=True).start()
    return await future


def _hand_over(loop: asyncio.AbstractEventLoop, settle: Callable[[Any], None],
               future: asyncio.Future[Any], value: Any) -> None:
    def settle_if_waited() -> None:
        if not future.done():  # not cancelled meanwhile (a timeout, Ctrl-C)
            settle(value)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(settle_if_waited)


def _in_thread(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    # The thread may outlive a timed-out task: until it returns, its writes must
    # still reach the task's capture (and be dropped), never the runner's streams.
    with routed_streams():
        return func(**kwargs)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _failed(masker: Masker, kind: str, error: str, exc: BaseException | None = None) -> Result:
    log = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if exc else ""
    return Result(ok=False, error=masker.mask(error), failure_kind=kind, log=masker.mask(log))
