"""Find the workspace root and load every mission, rune and policy file in it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

from msgspec import Struct, field

from nexusmon.errors import Diagnostic, InvalidFiles, Location, UsageError
from nexusmon.spec.doccache import DocumentCache
from nexusmon.spec.document import Document, read_text
from nexusmon.spec.model import Mission, Policy, Rune, Settings, Workspace
from nexusmon.spec.parse import parse_mission, parse_policy, parse_rune, parse_settings
from nexusmon.spec.schema_check import schema_diagnostics

SETTINGS_FILE = "nexusmon.yaml"
DEFAULT_STATE_DIR = ".nexusmon"
FOLDERS = {"mission": "missions", "rune": "runes", "policy": "policies"}
T = TypeVar("T")


def find_root(start: Path) -> Path:
    """The first directory upwards holding ``nexusmon.yaml`` or ``missions/``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / SETTINGS_FILE).is_file() or (candidate / "missions").is_dir():
            return candidate
    raise UsageError(
        f"no nexusmon workspace at or above {start} (no {SETTINGS_FILE} or missions/); "
        "run `nexusmon init` or pass -C DIR"
    )


def state_dir_for(root: Path, settings: Settings, given: Path | None = None) -> Path:
    """``given`` (--state-dir / NEXUSMON_STATE_DIR), else nexusmon.yaml's ``state_dir``, else ``.nexusmon/``."""
    if given is not None:
        return given.resolve()
    return (root / (settings.state_dir or DEFAULT_STATE_DIR)).resolve()


def yaml_files(folder: Path) -> list[Path]:
    """The YAML files of ``folder``, dangling symbolic links included (reading one is a
    located error, not a file that silently is not there)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in (".yaml", ".yml") and (p.is_file() or not p.exists()))


def shown_path(root: Path, path: Path) -> str:
    """How a file is named in messages: relative to the root when inside it, by its own
    name (a symbolic link is named as the link, wherever it points)."""
    absolute = Path(os.path.abspath(path))
    try:
        for candidate in (absolute, absolute.resolve()):
            if candidate.is_relative_to(root):
                return candidate.relative_to(root).as_posix()
    except (ValueError, OSError):
        pass
    return str(path)


class Loaded(Struct):
    """A workspace plus every problem met while loading it (files with errors are left out)."""

    workspace: Workspace
    diagnostics: list[Diagnostic] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)


def _load_kind(
    root: Path, kind: str, parse: Callable[[Document], T], loaded: Loaded, documents: DocumentCache,
) -> list[T]:
    items: list[T] = []
    for path in yaml_files(root / FOLDERS[kind]):
        doc = _read(root, path, kind, loaded, documents)
        if doc is not None:
            items.append(parse(doc))
    return items


def _read(root: Path, path: Path, kind: str, loaded: Loaded, documents: DocumentCache) -> Document | None:
    shown = shown_path(root, path)
    try:
        text = read_text(path, shown)
        doc = documents.get(kind, text, shown)
        if doc is not None:  # parsed and checked before
            loaded.documents[shown] = doc
            return doc
        # PyYAML (~12 ms to import) is needed only for files not parsed before.
        from nexusmon.spec.yamlload import parse_yaml

        doc = parse_yaml(text, shown)
    except InvalidFiles as exc:
        loaded.diagnostics.extend(exc.diagnostics)
        return None
    loaded.documents[shown] = doc
    if doc.data is None:
        loaded.diagnostics.append(Diagnostic(Location(shown), f"{kind} file is empty"))
        return None
    problems = schema_diagnostics(doc, kind)
    if problems:
        loaded.diagnostics.extend(problems)
        return None
    documents.put(kind, doc)
    return doc


def load_workspace(root: Path, state_dir: Path | None = None) -> Loaded:
    """Load ``root``; never raises for file problems (they are in ``diagnostics``).

    Files are parsed once per content: later loads read them back from the
    state directory (``state_dir`` when given, see :func:`state_dir_for`).
    """
    empty = Workspace(root, (), (), (), parse_settings(None), ())
    loaded = Loaded(empty)
    settings_file = root / SETTINGS_FILE
    settings_doc = (_read(root, settings_file, "settings", loaded, DocumentCache(None))
                    if settings_file.is_file() else None)
    settings = parse_settings(settings_doc)
    documents = DocumentCache.of_state_dir(state_dir_for(root, settings, state_dir))
    missions = _load_kind(root, "mission", parse_mission, loaded, documents)
    runes = _load_kind(root, "rune", parse_rune, loaded, documents)
    policies = _load_kind(root, "policy", parse_policy, loaded, documents)
    loaded.diagnostics.extend(_duplicates(missions, runes, policies))
    plugins = tuple(sorted((root / "plugins").glob("*.py"))) if (root / "plugins").is_dir() else ()
    loaded.workspace = Workspace(
        root, tuple(missions), tuple(runes), tuple(policies), settings, plugins,
        _broken_names(loaded, "rune"),
    )
    return loaded


def _broken_names(loaded: Loaded, kind: str) -> tuple[str, ...]:
    """Names declared by files of ``kind`` that failed to load, so callers are not told "unknown"."""
    failed = {d.location.path for d in loaded.diagnostics}
    names = []
    for path, doc in loaded.documents.items():
        if path.startswith(FOLDERS[kind] + "/") and path in failed and isinstance(doc.data, dict):
            name = doc.data.get(kind)
            if isinstance(name, str):
                names.append(name)
    return tuple(names)


def _duplicates(
    missions: list[Mission], runes: list[Rune], policies: list[Policy],
) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    keyed: list[tuple[str, str, list[tuple[str, Location]]]] = [
        ("mission id", "mission", [(m.id, m.loc("mission")) for m in missions]),
        ("rune", "rune", [(r.ref, r.loc("version")) for r in runes]),
        ("policy name", "policy", [(p.name, p.loc("policy")) for p in policies]),
    ]
    for label, _, items in keyed:
        first: dict[str, Location] = {}
        for name, loc in items:
            if name in first:
                problems.append(Diagnostic(loc, f"duplicate {label} '{name}'", f"also defined at {first[name]}"))
                problems.append(Diagnostic(first[name], f"duplicate {label} '{name}'", f"also defined at {loc}"))
            else:
                first[name] = loc
    return problems
