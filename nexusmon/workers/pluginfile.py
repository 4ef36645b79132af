"""Loading one workspace ``plugins/*.py`` file: its worker classes, each problem located.

A plugin class is any class defined in the file that has an ``execute`` method
or two other attributes of the contract (a helper class with just a ``name`` is
left alone); it is instantiated without arguments. Nothing raises: a file that
does not import, or a class that breaks the contract, becomes a
:class:`PluginProblem` at the line of the class, or of the attribute at fault
when the class body assigns it (the entry itself for a misspelt capability).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from msgspec import Struct, field

from nexusmon.workers.contract import CONTRACT, PluginError, PluginProblem

Position = tuple[int, int]  # 1-based line and column


class Registrar(Protocol):
    def register(self, worker: Any, origin: str) -> None: ...

    def add_problem(self, problem: PluginProblem) -> None: ...


class ClassPositions(Struct, frozen=True):
    """Where a class of a plugin file stands, and the attributes its body assigns."""

    at: Position
    attributes: dict[str, Position] = field(default_factory=dict)
    items: dict[str, list[Position]] = field(default_factory=dict)  # entries of a literal list

    def of(self, exc: PluginError) -> Position:
        """Where the attribute ``exc`` blames is written (the class when not in its body)."""
        if exc.attribute is None or exc.attribute not in self.attributes:
            return self.at
        items = self.items.get(exc.attribute, [])
        if exc.item is not None and exc.item < len(items):
            return items[exc.item]
        return self.attributes[exc.attribute]


def load_plugin_file(registry: Registrar, root: Path, path: Path) -> None:
    """Register every worker class of ``path``; record each problem on ``registry``."""
    relative = relative_path(path, root)
    try:
        source = path.read_text(encoding="utf-8")
        positions = _class_positions(source, str(path))
        module = _import_file(path)
    except SyntaxError as exc:
        registry.add_problem(PluginProblem(relative, exc.lineno or 1, f"syntax error: {exc.msg}"))
        return
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything (SystemExit, its own BaseException)
        line = _line_in_traceback(exc, path)
        registry.add_problem(PluginProblem(relative, line, f"import failed: {one_line(exc)}"))
        return
    for cls in _plugin_classes(module):
        where = positions.get(cls.__name__, ClassPositions((1, 1)))
        try:
            registry.register(cls(), origin=relative)
        except PluginError as exc:
            line, col = where.of(exc)
            registry.add_problem(PluginProblem(relative, line, f"class {cls.__name__}: {exc}", col, exc.hint))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - the plugin's own constructor failed
            message = f"class {cls.__name__}: cannot be created: {one_line(exc)}"
            registry.add_problem(PluginProblem(relative, where.at[0], message, where.at[1]))


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
    others = sum(hasattr(cls, attr) for attr in CONTRACT if attr != "execute")
    return callable(getattr(cls, "execute", None)) or others >= 2


def _class_positions(source: str, filename: str) -> dict[str, ClassPositions]:
    tree = ast.parse(source, filename=filename)
    return {node.name: _positions(node) for node in tree.body if isinstance(node, ast.ClassDef)}


def _positions(cls: ast.ClassDef) -> ClassPositions:
    attributes: dict[str, Position] = {}
    items: dict[str, list[Position]] = {}
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            attributes[node.name] = (node.lineno, node.col_offset + 1)
            continue
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                attributes[target.id] = (target.lineno, target.col_offset + 1)
                if isinstance(value, (ast.List, ast.Tuple)):
                    items[target.id] = [(e.lineno, e.col_offset + 1) for e in value.elts]
    return ClassPositions((cls.lineno, cls.col_offset + 1), attributes, items)


def _line_in_traceback(exc: BaseException, path: Path) -> int:
    """The deepest line of ``path`` in the traceback of ``exc``; 1 if none."""
    wanted = str(path)
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == wanted]
    return (lines[-1] or 1) if lines else 1


def relative_path(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception a plugin raised."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
