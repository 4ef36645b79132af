"""The worker registry: built-ins, workspace ``plugins/*.py`` and entry points.

:func:`load_registry` builds a fresh :class:`Registry` on every call (there is
no global one). Built-ins register first, through the same
:meth:`Registry.register` as plugins. A plugin that cannot be loaded never
raises: it becomes a :class:`PluginProblem` located in its file, so
``nexusmon validate`` can report it like any other file error.

A plugin class is any class defined in a ``plugins/*.py`` file that has an
``execute`` method or two other attributes of the contract (a helper class with
just a ``name`` is left alone); it is instantiated without arguments and
must provide the whole contract of :class:`nexusmon.workers.base.WorkerPlugin`.
An entry point in group ``nexusmon.workers`` names such a class (or an instance).
Installed entry points are read the first time a name is not found among the
built-ins and plugin files, or when every name or problem is asked for
(``names``, ``problems``): scanning installed distributions costs a run ~15 ms
that most runs do not need.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from nexusmon.errors import NexusmonError
from nexusmon.spec.model import Rank
from nexusmon.util.params_schema import compile_params_schema
from nexusmon.workers.base import WorkerPlugin
from nexusmon.workers.http import HttpWorker
from nexusmon.workers.llm import LlmWorker
from nexusmon.workers.mission import MissionWorker
from nexusmon.workers.noop import NoopWorker
from nexusmon.workers.python import PythonWorker
from nexusmon.workers.shell import ShellWorker
from nexusmon.workers.template import TemplateWorker

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "nexusmon.workers"
BUILTIN = "built-in"
_CONTRACT = ("name", "capabilities", "risk_level", "requires_approval", "params_schema", "execute")


class PluginProblem(Struct, frozen=True):
    """A plugin that could not be registered, located in its file (1-based line)."""

    path: str
    line: int
    message: str


class PluginError(NexusmonError):
    """A worker that does not honour the plugin contract."""


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
            with contextlib.redirect_stdout(sys.stderr):  # see load_registry
                for entry_point in installed():
                    _load_entry_point(self, entry_point)

    def register(self, worker: Any, origin: str = BUILTIN) -> None:
        """Add ``worker``; raises :class:`PluginError` when it breaks the contract."""
        check_worker(worker)
        if origin != BUILTIN:
            _check_params_schema(worker)
        name = worker.name
        if name in self._origins:
            known = self._origins[name]
            where = "a built-in worker" if known == BUILTIN else f"already defined by {known}"
            raise PluginError(f"worker name {name!r} is {where}")
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
    # What a plugin prints while it is imported or created goes to stderr: stdout may
    # carry a JSON document (`run --format json`) that a stray line would break.
    with contextlib.redirect_stdout(sys.stderr):
        for path in sorted((workspace_root / "plugins").glob("*.py")):
            _load_plugin_file(registry, workspace_root, path)
    return registry


def check_worker(worker: Any) -> None:
    """Raise :class:`PluginError` naming what ``worker`` lacks or gets wrong."""
    missing = [attr for attr in _CONTRACT if not hasattr(worker, attr)]
    if missing:
        raise PluginError(f"missing {', '.join(missing)} (see the worker plugin contract)")
    if not isinstance(worker.name, str) or not worker.name:
        raise PluginError("'name' must be a non-empty string")
    if not inspect.iscoroutinefunction(worker.execute):
        raise PluginError(f"worker {worker.name!r}: 'execute' must be an async method")
    if worker.risk_level not in Rank.__members__:
        raise PluginError(
            f"worker {worker.name!r}: risk_level {worker.risk_level!r} is not one of E D C B A S"
        )
    capabilities = worker.capabilities
    if not isinstance(capabilities, (list, tuple)) or not all(
        isinstance(c, str) for c in capabilities
    ):
        raise PluginError(f"worker {worker.name!r}: 'capabilities' must be a list of strings")
    if not isinstance(worker.requires_approval, bool):
        raise PluginError(f"worker {worker.name!r}: 'requires_approval' must be true or false")
    if worker.params_schema is not None and not isinstance(worker.params_schema, dict):
        raise PluginError(f"worker {worker.name!r}: 'params_schema' must be a dict or None")


def _check_params_schema(worker: Any) -> None:
    """A plugin's ``params_schema`` must compile: a broken one is the plugin's error, not a mission's."""
    if not worker.params_schema:
        return
    try:
        check = compile_params_schema(worker.params_schema)
    except Exception as exc:  # noqa: BLE001 - bad types, bad regexes, bad references...
        raise PluginError(
            f"worker {worker.name!r}: params_schema is not a valid JSON Schema: {' '.join(str(exc).split())}"
        ) from None
    try:
        check({})  # a $ref that refers to itself without end recurses on any value
    except RecursionError:
        raise PluginError(f"worker {worker.name!r}: params_schema refers to itself without end") from None
    except Exception:  # noqa: BLE001, S110 - {} not being valid is fine
        pass


def _load_plugin_file(registry: Registry, root: Path, path: Path) -> None:
    relative = _relative(path, root)
    try:
        source = path.read_text(encoding="utf-8")
        class_lines = _class_lines(source, str(path))
        module = _import_file(path)
    except SyntaxError as exc:
        registry.add_problem(
            PluginProblem(relative, exc.lineno or 1, f"syntax error: {exc.msg}")
        )
        return
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything (SystemExit, its own BaseException)
        line = _line_in_traceback(exc, path)
        registry.add_problem(PluginProblem(relative, line, f"import failed: {_one_line(exc)}"))
        return
    for cls in _plugin_classes(module):
        line = class_lines.get(cls.__name__, 1)
        try:
            registry.register(cls(), origin=relative)
        except PluginError as exc:
            message = f"class {cls.__name__}: {exc}"
            registry.add_problem(PluginProblem(relative, line, message))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - the plugin's own constructor failed
            message = f"class {cls.__name__}: cannot be created: {_one_line(exc)}"
            registry.add_problem(PluginProblem(relative, line, message))


def _import_file(path: Path) -> ModuleType:
    """Run a plugin file as a module named after its absolute path (no cross-workspace clash)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"nexusmon_plugin_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path.name}")
    module = importlib.util.module_from_spec(spec)
    # Registered only while it runs (dataclasses and typing look the module up).
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def _plugin_classes(module: ModuleType) -> list[type]:
    """Classes defined in ``module`` (not imported into it) that look like workers."""
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and _looks_like_a_worker(obj)
    ]


def _looks_like_a_worker(cls: type) -> bool:
    """An ``execute`` method, or two other attributes of the contract (so a misspelt
    ``execute`` is reported, while a helper class with just a ``name`` is not a worker)."""
    others = sum(hasattr(cls, attr) for attr in _CONTRACT if attr != "execute")
    return callable(getattr(cls, "execute", None)) or others >= 2


def _class_lines(source: str, filename: str) -> dict[str, int]:
    tree = ast.parse(source, filename=filename)
    return {node.name: node.lineno for node in tree.body if isinstance(node, ast.ClassDef)}


def _line_in_traceback(exc: BaseException, path: Path) -> int:
    """The deepest line of ``path`` in the traceback of ``exc``; 1 if none."""
    wanted = str(path)
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == wanted]
    return (lines[-1] or 1) if lines else 1


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
        registry.add_problem(PluginProblem(where, 1, str(exc)))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything (SystemExit, its own BaseException)
        registry.add_problem(PluginProblem(where, 1, f"cannot load: {_one_line(exc)}"))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
