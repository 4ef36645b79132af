"""Signals while a run is driven: SIGINT, SIGTERM and SIGHUP noted, never fatal on the spot."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import asyncio


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP while a run is driven: noted, never fatal on the spot.

    Installed before the run's row exists and kept until the run is recorded as
    ended, so no signal can end the process in between and leave the run
    ``running``.  While the scheduler runs, a signal interrupts it (nothing new
    starts, running tasks' process groups are killed) and the run ends
    ``interrupted``.  SIGHUP (the terminal closed, the ssh session dropped)
    also points stdout and stderr at /dev/null when they were a terminal, so
    that the runner's last words cannot fail it.  A signal the caller ignores
    stays ignored (``nohup nexusmon run ...`` survives a hangup).  Handlers can
    only be set in the main thread; elsewhere the caller's handling stays.
    """

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name))

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._ttys: tuple[int, ...] = ()
        self._target: tuple[asyncio.AbstractEventLoop, Callable[[], None]] | None = None

    def __enter__(self) -> Interrupts:  # noqa: PYI034 (no typing_extensions dependency)
        if threading.current_thread() is threading.main_thread():
            self._ttys = tuple(fd for fd in (1, 2) if _isatty(fd))
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup`, `cmd &` in a script
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def raise_if_received(self) -> None:
        """Before the run is recorded, a signal simply stops the command (exit status 130)."""
        if self.received is not None:
            raise KeyboardInterrupt

    def attach(self, loop: asyncio.AbstractEventLoop, interrupt: Callable[[], None]) -> None:
        """From now on a signal calls ``interrupt`` in ``loop`` (at once if one came already)."""
        self._target = (loop, interrupt)
        if self.received is not None:
            interrupt()

    def detach(self) -> None:
        self._target = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        if signum == getattr(signal, "SIGHUP", None):
            self._leave_terminal()
        target = self._target
        if target is not None:
            # The handler runs between two bytecodes of the loop's own thread: let the loop
            # call interrupt() at a safe point rather than in the middle of the scheduler.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                target[0].call_soon_threadsafe(target[1])

    def _leave_terminal(self) -> None:
        if not self._ttys:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in self._ttys:
                os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        self._ttys = ()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
