"""The worker registry: built-ins, workspace ``plugins/*.py`` and entry points.

:func:`load_registry` builds a fresh :class:`Registry` on every call (there is
no global one). Built-ins register first, through the same
:meth:`Registry.register` as plugins. A plugin that cannot be loaded never
raises: it becomes a :class:`PluginProblem` located in its file, so
``nexusmon validate`` can report it like any other file error.

Plugin files are read by :mod:`nexusmon.workers.pluginfile`; every worker must
provide the whole contract of :class:`nexusmon.workers.base.WorkerPlugin`
(checked by :mod:`nexusmon.workers.contract`). An entry point in group ``nexusmon.workers`` names such a class (or an instance).
Installed entry points are read the first time a name is not found among the
built-ins and plugin files, or when every name or problem is asked for
(``names``, ``problems``): scanning installed distributions costs a run ~15 ms
that most runs do not need.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexusmon.util.capture import descriptor_1_to_stderr
from nexusmon.workers.base import WorkerPlugin
from nexusmon.workers.contract import PluginError, PluginProblem, check_params_schema, check_worker
from nexusmon.workers.http import HttpWorker
from nexusmon.workers.llm import LlmWorker
from nexusmon.workers.mission import MissionWorker
from nexusmon.workers.noop import NoopWorker
from nexusmon.workers.pluginfile import load_plugin_file, one_line
from nexusmon.workers.python import PythonWorker
from nexusmon.workers.shell import ShellWorker
from nexusmon.workers.template import TemplateWorker

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "nexusmon.workers"
BUILTIN = "built-in"


class Registry:
    """Workers by name, plus the problems met while loading plugins."""

    def __init__(
        self, installed: Callable[[], Iterable[EntryPoint]] | None = None,
    ) -> None:
        self._workers: dict[str, WorkerPlugin] = {}
        self._origins: dict[str, str] = {}
        self._problems: list[PluginProblem] = []
        self._installed = installed  # entry points, read on first need

    @property
    def problems(self) -> list[PluginProblem]:
        """Every plugin that could not be registered, installed ones included."""
        self._load_installed()
        return self._problems

    def local_problems(self) -> list[PluginProblem]:
        """Problems met so far, without reading installed entry points."""
        return list(self._problems)

    def add_problem(self, problem: PluginProblem) -> None:
        self._problems.append(problem)

    def _load_installed(self) -> None:
        installed, self._installed = self._installed, None
        if installed is not None:
            with descriptor_1_to_stderr():  # see load_registry
                for entry_point in installed():
                    _load_entry_point(self, entry_point)

    def register(self, worker: Any, origin: str = BUILTIN) -> None:
        """Add ``worker``; raises :class:`PluginError` when it breaks the contract."""
        check_worker(worker)
        if origin != BUILTIN:
            check_params_schema(worker)
        name = worker.name
        if name in self._origins:
            known = self._origins[name]
            where = "a built-in worker" if known == BUILTIN else f"already defined by {known}"
            raise PluginError(f"worker name {name!r} is {where}", "name")
        self._workers[name] = worker
        self._origins[name] = origin

    def get(self, name: str) -> WorkerPlugin | None:
        """The worker called ``name``, or None."""
        worker = self._workers.get(name)
        if worker is None and self._installed is not None:
            self._load_installed()
            worker = self._workers.get(name)
        return worker

    def names(self) -> list[str]:
        """Every registered worker name, sorted."""
        self._load_installed()
        return sorted(self._workers)

    def origin(self, name: str) -> str | None:
        """Where a worker comes from: ``built-in``, a plugin file or an entry point."""
        if name not in self._origins:
            self._load_installed()
        return self._origins.get(name)


def builtin_workers() -> list[WorkerPlugin]:
    """A fresh instance of every built-in worker."""
    return [
        NoopWorker(),
        TemplateWorker(),
        ShellWorker(),
        PythonWorker(),
        HttpWorker(),
        LlmWorker(),
        MissionWorker(),
    ]


def load_registry(workspace_root: Path) -> Registry:
    """Built-ins, then ``plugins/*.py`` of the workspace, then (when needed) entry points."""
    registry = Registry(installed=_entry_points)
    for worker in builtin_workers():
        registry.register(worker)
    # What a plugin prints while it is imported or created goes to stderr, from print() or
    # from a subprocess: stdout may carry a JSON document that a stray line would break.
    with descriptor_1_to_stderr():
        for path in sorted((workspace_root / "plugins").glob("*.py")):
            load_plugin_file(registry, workspace_root, path)
    return registry


def _entry_points() -> Iterable[EntryPoint]:
    import importlib.metadata

    found: Any = importlib.metadata.entry_points()
    if hasattr(found, "select"):
        return list(found.select(group=ENTRY_POINT_GROUP))
    return list(found.get(ENTRY_POINT_GROUP, []))  # Python 3.9


def _load_entry_point(registry: Registry, entry_point: EntryPoint) -> None:
    where = f"entry point {entry_point.name} ({entry_point.value})"
    try:
        loaded = entry_point.load()
        registry.register(loaded() if inspect.isclass(loaded) else loaded, origin=where)
    except PluginError as exc:
        registry.add_problem(PluginProblem(where, 1, str(exc), hint=exc.hint))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything (SystemExit, its own BaseException)
        registry.add_problem(PluginProblem(where, 1, f"cannot load: {one_line(exc)}"))
