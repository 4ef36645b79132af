"""Watch mode: which workspace changes call for a new run, and a feed that never loses one.

A background thread watches the workspace root recursively (watchfiles) and
queues every batch of changed paths, so edits made while a run is going on
are seen once it is over.  The main thread decides which of them matter:
workflow files (missions, runes, policies, plugins, ``nexusmon.yaml``) and
files matched by a ``sources`` glob of the plan.  The runner's own writes
(the state directory, declared artifacts) and ``.git``/``__pycache__`` never
trigger a run.
"""

from __future__ import annotations

import fnmatch
import os
import queue
import signal
import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Callable, Union

import watchfiles
from msgspec import Struct
from msgspec.structs import replace

from nexusmon.compile.plan import Plan
from nexusmon.errors import NexusmonError
from nexusmon.util.wsglob import GLOB_CHARS

WORKFLOW_FILES: tuple[str, ...] = (
    "nexusmon.yaml",
    "missions/*.yaml", "missions/*.yml",
    "runes/*.yaml", "runes/*.yml",
    "policies/*.yaml", "policies/*.yml",
    "plugins/*.py",
)
NOISE_DIRS = frozenset({".git", ".nexusmon", "__pycache__"})
READY_TIMEOUT_S = 10.0
POLL_S = 0.05
MIN_GROUP_MS = 1600


class WatchFailed(NexusmonError):
    """The filesystem watcher could not start or stopped working."""

    exit_code = 1


class Targets(Struct, frozen=True):
    """What the watcher cares about: paths are relative to ``root``, globs as in ``sources``."""

    root: Path
    state_dir: Path
    sources: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # e.g. the --inputs-file, when inside the workspace


def targets_for(
    root: Path, state_dir: Path, plan: Plan | None, previous: Targets | None = None,
    extra: Iterable[str] = (),
) -> Targets:
    """Targets of ``plan``; without a plan (files invalid) the previous globs stay watched."""
    if plan is None:
        base = previous or Targets(root, state_dir)
        return replace(base, root=root, state_dir=state_dir, extra=tuple(extra))
    sources = sorted({p for task in plan.tasks for p in task.spec.sources})
    artifacts = sorted({p for task in plan.tasks for p in task.spec.artifacts})
    return Targets(root, state_dir, tuple(sources), tuple(artifacts), tuple(extra))


def relative(root: Path, path: str | Path) -> str | None:
    """``path`` relative to ``root`` in posix form, or None when it lies outside."""
    try:
        rel = Path(os.path.relpath(path, root))
    except ValueError:  # another drive
        return None
    text = rel.as_posix()
    if text == "." or text == ".." or text.startswith("../"):
        return None
    return text


def is_noise(targets: Targets, path: str) -> bool:
    """The runner's own state, version control and byte-code caches."""
    if relative(targets.state_dir, path) is not None or Path(path) == targets.state_dir:
        return True
    rel = relative(targets.root, path)
    return rel is None or bool(NOISE_DIRS.intersection(rel.split("/")))


def triggers(targets: Targets, path: str) -> bool:
    """True when a change to ``path`` calls for a new run."""
    if is_noise(targets, path):
        return False
    rel = relative(targets.root, path)
    if rel is None or any(glob_match(p, rel) for p in targets.artifacts):
        return False
    patterns = WORKFLOW_FILES + targets.sources + targets.extra
    return any(glob_match(p, rel) for p in patterns)


def triggered(targets: Targets, paths: Iterable[str]) -> list[str]:
    """The changed paths (relative, sorted) that call for a new run."""
    found = {relative(targets.root, p) for p in paths if triggers(targets, p)}
    return sorted(p for p in found if p is not None)


def glob_match(pattern: str, rel: str) -> bool:
    """Whether workspace path ``rel`` matches a ``sources``-style glob (``**`` spans folders;
    a plain folder name stands for everything below it)."""
    parts = tuple(p for p in pattern.replace("\\", "/").split("/") if p not in ("", "."))
    if not GLOB_CHARS.intersection(pattern):
        parts += ("**",)  # a file's own path, or any path below a folder
    return _match(parts, tuple(rel.split("/")))


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match(rest, parts[1:])


def files_under(folder: str) -> Iterator[str]:
    """Every file below ``folder``, skipping version control and byte-code caches."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in NOISE_DIRS]
        yield from (os.path.join(dirpath, name) for name in filenames)


def describe(changed: list[str], shown: int = 3) -> str:
    """``a, b and 2 more`` for a calm one-line message."""
    head = ", ".join(changed[:shown])
    more = len(changed) - shown
    return f"{head} and {more} more" if more > 0 else head


class _Probe:
    """The watcher's stop event: polled by watchfiles on every step, so its first
    poll also tells that the watches are in place."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.stop = threading.Event()

    def is_set(self) -> bool:
        self.ready.set()
        return self.stop.is_set()


Batch = Union[set[str], BaseException]


class ChangeFeed:
    """Changed paths under ``root``, collected by a background thread.

    ``keep(path)`` drops noise early; ``quiet_ms`` is how long no new change
    must arrive before a batch is handed over.
    """

    def __init__(self, root: Path, keep: Callable[[str], bool], quiet_ms: int = 50) -> None:
        self.root = root
        self.keep = keep
        self.quiet_ms = quiet_ms
        self._queue: queue.Queue[Batch] = queue.Queue()
        self._probe = _Probe()
        self._thread = threading.Thread(target=self._collect, name="nexusmon-watch", daemon=True)

    def __enter__(self) -> ChangeFeed:  # noqa: PYI034 (no typing_extensions dependency)
        self._thread.start()
        self._probe.ready.wait(READY_TIMEOUT_S)
        self._check_alive()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self._probe.stop.set()
        self._thread.join(timeout=2.0)

    def _collect(self) -> None:
        try:
            for changes in watchfiles.watch(
                self.root, watch_filter=lambda _change, path: self.keep(path),
                debounce=max(MIN_GROUP_MS, 4 * self.quiet_ms), step=self.quiet_ms,
                stop_event=self._probe, raise_interrupt=False,
            ):
                self._queue.put(self._expand(changes))
        except Exception as exc:  # noqa: BLE001 (handed to the main thread, which reports it)
            self._queue.put(exc)
        finally:
            self._probe.ready.set()

    def _expand(self, changes: set[tuple[watchfiles.Change, str]]) -> set[str]:
        """Changed paths, plus the files inside new folders: files written right after
        their folder was created may be missed before the folder is watched."""
        paths = set()
        for change, path in changes:
            paths.add(path)
            if change == watchfiles.Change.added and os.path.isdir(path):
                paths.update(p for p in files_under(path) if self.keep(p))
        return paths

    def _check_alive(self) -> None:
        """Raise :class:`WatchFailed` when the watcher thread has ended on its own."""
        if self._thread.is_alive() or self._probe.stop.is_set():
            return
        try:
            self._merge(self._queue.get_nowait())  # raises with the cause, if one was queued
        except queue.Empty:
            pass
        raise WatchFailed(f"the watcher of {self.root} stopped unexpectedly")

    def next_batch(self, stop: threading.Event) -> set[str] | None:
        """Every path changed since the last call (waits for one); None once ``stop`` is set."""
        while not stop.is_set():
            try:
                first = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                self._check_alive()
                continue
            return self._merge(first)
        return None

    def _merge(self, first: Batch) -> set[str]:
        paths: set[str] = set()
        item: Batch | None = first
        while item is not None:
            if isinstance(item, BaseException):
                raise WatchFailed(f"cannot watch {self.root}: {item}") from item
            paths |= item
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = None
        return paths


class StopSignals:
    """SIGINT and SIGTERM set ``event`` instead of raising, so watch mode ends calmly.

    ``arm`` again after each run: the runner installs handlers of its own for
    the duration of a run and restores the defaults afterwards.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def arm(self) -> None:
        for sig in self.SIGNALS:
            self._previous.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
