"""What in-process code writes to ``sys.stdout``/``sys.stderr``, kept in its task's log.

Plugins' ``execute`` and ``python`` worker functions run inside the runner's
process: left alone, their ``print()`` would reach the runner's own stdout,
unmasked, missing from ``nexusmon logs`` and breaking ``run --format json``.

While at least one task is captured (:func:`capturing`), ``sys.stdout`` and
``sys.stderr`` are routers: a write goes to the :class:`Capture` named by a
:class:`~contextvars.ContextVar` of the writing context, and to the real
stream when there is none (the runner's own output). asyncio tasks and
``asyncio.to_thread`` copy the context, so several tasks running at once each
get their own output. When the last capture ends the real streams are put
back. The routers are process-wide state because ``sys.stdout`` is.

Writes to ``sys.stdout.buffer`` are captured too (as UTF-8). Not captured (it
reaches the real stream): writes to file descriptors 1 and 2 (``os.write``, C
extensions, subprocesses that inherit them), to ``sys.__stdout__``, to a
stream object saved before the run, and from threads started without the
task's context (``threading.Thread``, ``loop.run_in_executor``).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, BinaryIO, TextIO, cast

from nexusmon.util.masking import Masker
from nexusmon.util.process import CappedText  # the same head + tail cap as process output

MAX_CAPTURE = 1_000_000  # characters kept per attempt, as run_process keeps per process

_current: ContextVar[Capture | None] = ContextVar("nexusmon_capture", default=None)


class Capture:
    """One attempt's output: masked as it arrives, capped, safe to write from threads."""

    __slots__ = ("_decoder", "_kept", "_lock", "_masker")

    def __init__(self, masker: Masker, cap: int = MAX_CAPTURE) -> None:
        self._masker = masker.stream()
        self._kept = CappedText(cap)
        self._lock = threading.Lock()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._add(text)
        return len(text)

    def write_bytes(self, data: bytes) -> int:
        """What was written to ``sys.stdout.buffer``: UTF-8 (a character split across writes too)."""
        with self._lock:
            self._add(self._decoder.decode(data))
        return len(data)

    def text(self) -> str:
        """Everything written so far, masked (a secret split across writes included)."""
        with self._lock:
            self._add(self._decoder.decode(b"", final=True))
            rest = self._masker.flush()
            if rest:
                self._kept.add(rest)
            return self._kept.text()

    def _add(self, text: str) -> None:
        shown = self._masker.feed(text)
        if shown:
            self._kept.add(shown)


class _BinaryRouter:
    """Stands in for ``sys.stdout.buffer`` (or stderr's) while the routers are installed."""

    def __init__(self, real: BinaryIO) -> None:
        self.real = real

    def write(self, data: bytes) -> int:
        capture = _current.get()
        if capture is None:
            return self.real.write(data)
        return capture.write_bytes(bytes(data))

    def flush(self) -> None:
        if _current.get() is None:
            self.real.flush()

    def __getattr__(self, name: str) -> Any:
        if name == "real":  # not set yet (copy, pickle): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.real, name)


class _Router:
    """Stands in for ``sys.stdout`` or ``sys.stderr``; anything else is the real stream's."""

    def __init__(self, real: TextIO) -> None:
        self.real = real
        raw = getattr(real, "buffer", None)
        self._buffer = _BinaryRouter(raw) if raw is not None else None

    @property
    def buffer(self) -> _BinaryRouter:
        if self._buffer is None:
            raise AttributeError("buffer")
        return self._buffer

    def write(self, text: str) -> int:
        capture = _current.get()
        if capture is None:
            return self.real.write(text)
        return capture.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _current.get() is None:
            self.real.flush()

    def isatty(self) -> bool:
        # A task's output goes to a log: no colours or progress bars in it.
        return _current.get() is None and self.real.isatty()

    def __getattr__(self, name: str) -> Any:
        if name == "real":  # not set yet (copy, pickle): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.real, name)


class _Streams:
    """Installs the routers for the first user and restores the real streams after the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._routers: dict[str, _Router] = {}

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            for name in ("stdout", "stderr"):
                real = getattr(sys, name)
                if real is not None:
                    self._routers[name] = router = _Router(real)
                    setattr(sys, name, cast(TextIO, router))

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users:
                return
            for name, router in self._routers.items():
                # Replaced meanwhile by someone else: theirs stays (it may wrap ours,
                # which passes everything through once no capture is active).
                if getattr(sys, name) is router:
                    setattr(sys, name, router.real)
            self._routers.clear()


_STREAMS = _Streams()


@contextlib.contextmanager
def routed_streams() -> Iterator[None]:
    """Keep the routers installed while the block runs, e.g. in a thread that may outlive its task."""
    _STREAMS.acquire()
    try:
        yield
    finally:
        _STREAMS.release()


@contextlib.contextmanager
def capturing(capture: Capture) -> Iterator[Capture]:
    """Send this context's writes to ``sys.stdout``/``sys.stderr`` to ``capture`` in the block.

    asyncio tasks created and ``asyncio.to_thread`` calls made in the block inherit it.
    """
    with routed_streams():
        token = _current.set(capture)
        try:
            yield capture
        finally:
            _current.reset(token)


@contextlib.contextmanager
def descriptor_1_to_stderr() -> Iterator[None]:
    """For the block, what anything writes to stdout goes to stderr: ``print()`` and, below
    it, file descriptor 1 (``os.write(1, ...)``, C code, subprocesses that inherit it).

    Used where stdout must carry nothing but a command's JSON document: while tasks run,
    and while workspace plugins are imported (an import may print a version string).
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
