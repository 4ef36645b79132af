"""The one subprocess helper every process-spawning worker uses.

:func:`run_process` starts ``argv`` in its own session (so a timeout or a
cancellation ends the whole process group, grandchildren included), reads
stdout and stderr without blocking the event loop, decodes them as UTF-8
(undecodable bytes become U+FFFD), masks secrets (also across chunk
boundaries), caps what it keeps, and returns a :class:`ProcessResult`.
Starting the process is :mod:`nexusmon.util.spawn`'s job.

Process lifetime rules:

- On timeout the group gets SIGTERM, then SIGKILL after :data:`KILL_GRACE_S`.
- When the main process exits while something it started still holds its
  stdout/stderr open, the task is over: that process group is terminated the
  same way rather than waited for. Background processes that redirected their
  output elsewhere are left alone (unless the task timed out).
- The main process is reaped only after the last signal to its group was sent,
  so the group id cannot be recycled under our feet.

CPU time and peak RSS come from ``os.wait4`` on the child itself (its own
usage plus the descendants it waited for), so concurrent tasks never mix
their numbers. Exit is noticed through a pidfd on Linux (no thread, no SIGCHLD
handler, nothing that races asyncio's child watcher, which only waits for pids
registered with it); elsewhere a small thread blocks in ``os.wait4``.
"""

from __future__ import annotations

import codecs
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable

from msgspec import Struct

from nexusmon.util.lazy import asyncio
from nexusmon.util.masking import Masker, StreamMasker
from nexusmon.util.spawn import Started, spawn, spawn_error

KILL_GRACE_S = 2.0
_ABANDON_S = 1.0  # after SIGKILL: stop waiting for pipes held by escaped processes
_READ_SIZE = 65536
_MAX_LINE = 65536
_Exit = tuple[int, float, int]  # wait status, CPU seconds, peak RSS in KiB
_PARTIAL_LOG = "nexusmon_partial_log"


class ProcessResult(Struct, frozen=True):
    """What one process did; texts are decoded, masked and capped."""

    exit_code: int | None  # negative signal number when killed; None if it never started
    stdout: str
    stderr: str
    combined: str
    timed_out: bool
    duration_s: float
    cpu_s: float
    peak_rss_kb: int
    error: str | None  # "command not found: foo", "timed out after 1s", ...


class CappedText:
    """Keeps the first and the last ``cap / 2`` characters; counts what is dropped between.

    The end of a log is where errors usually are, so it is kept as well as the start.
    """

    __slots__ = ("_dropped", "_head", "_room", "_tail", "_tail_cap")

    def __init__(self, cap: int) -> None:
        self._head: list[str] = []
        self._room = cap - cap // 2
        self._tail = ""
        self._tail_cap = cap // 2
        self._dropped = 0

    def add(self, text: str) -> None:
        if self._room:
            taken = text[: self._room]
            self._head.append(taken)
            self._room -= len(taken)
            text = text[len(taken):]
            if not text:
                return
        self._tail += text
        if len(self._tail) > 2 * self._tail_cap:
            cut = len(self._tail) - self._tail_cap
            self._dropped += len(self._tail[:cut].encode("utf-8"))
            self._tail = self._tail[cut:]

    def text(self) -> str:
        cut = max(0, len(self._tail) - self._tail_cap)
        dropped = self._dropped + len(self._tail[:cut].encode("utf-8"))
        marker = f"\n[... {dropped} bytes truncated ...]\n" if dropped else ""
        return "".join(self._head) + marker + self._tail[cut:]


class _Stream:
    """One output pipe: decode, mask, keep, and hand out complete lines."""

    __slots__ = ("_combined", "_decoder", "_line", "_masker", "_on_line", "kept")

    def __init__(
        self,
        masker: StreamMasker,
        cap: int,
        combined: CappedText,
        on_line: Callable[[str], None] | None,
    ) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._masker = masker
        self.kept = CappedText(cap)
        self._combined = combined
        self._on_line = on_line
        self._line = ""

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self._masker.feed(self._decoder.decode(data, final))
        if final:
            text += self._masker.flush()
        if text:
            self.kept.add(text)
            self._combined.add(text)
        if self._on_line is not None:
            self._emit_lines(text, final)

    def _emit_lines(self, text: str, final: bool) -> None:
        assert self._on_line is not None
        *lines, rest = (self._line + text).split("\n")
        for line in lines:
            self._on_line(line)
        if rest and (final or len(rest) > _MAX_LINE):
            self._on_line(rest)
            rest = ""
        self._line = rest


class _Child:
    """Event-loop callbacks that follow one started process to its end."""

    def __init__(
        self,
        started: Started,
        pipes: dict[int, _Stream],
        timeout: float | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.pid = started.pid
        self.popen = started.popen
        self.pipes = pipes
        self.done: asyncio.Future[_Exit] = self.loop.create_future()
        self.settled = False
        self.timed_out = False
        self.terminating = False
        self.exited = False
        self.reaped: _Exit | None = None
        self.pidfd: int | None = None
        self.timers: list[asyncio.TimerHandle] = []
        for fd in pipes:
            self.loop.add_reader(fd, self._on_readable, fd)
        if timeout is not None:
            self.timers.append(self.loop.call_later(timeout, self._on_timeout))
        self._watch_exit()

    def _watch_exit(self) -> None:
        try:
            self.pidfd = os.pidfd_open(self.pid)  # type: ignore[attr-defined,unused-ignore]
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_in_thread, daemon=True).start()
            return
        self.loop.add_reader(self.pidfd, self._on_exit)

    def _wait_in_thread(self) -> None:
        reaped = _reap(self.pid)
        try:
            self.loop.call_soon_threadsafe(self._on_reaped_in_thread, reaped)
        except RuntimeError:  # the loop is gone: nobody waits for this result
            pass

    def _on_reaped_in_thread(self, reaped: _Exit) -> None:
        self.reaped = reaped
        self._on_exit()

    def _on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.pipes[fd].feed(data)
            return
        self._close_pipe(fd)
        self._maybe_finish()

    def _close_pipe(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        os.close(fd)
        self.pipes.pop(fd).feed(b"", final=True)

    def _drain(self) -> None:
        """Read what is already in the pipes; pipes at EOF get closed."""
        for fd in list(self.pipes):
            while fd in self.pipes:
                try:
                    data = os.read(fd, _READ_SIZE)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._close_pipe(fd)
                else:
                    self.pipes[fd].feed(data)

    def _on_exit(self) -> None:
        if self.pidfd is not None:
            self.loop.remove_reader(self.pidfd)
        self.exited = True
        self._drain()
        if self.pipes:
            self._terminate()  # something it started still holds our pipes
        self._maybe_finish()

    def _on_timeout(self) -> None:
        self.timed_out = True
        self._terminate()

    def _terminate(self) -> None:
        if self.terminating:
            return
        self.terminating = True
        self._signal_group(signal.SIGTERM)
        self.timers.append(self.loop.call_later(KILL_GRACE_S, self._kill))

    def _kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        self.timers.append(self.loop.call_later(_ABANDON_S, self._abandon_pipes))

    def _abandon_pipes(self) -> None:
        for fd in list(self.pipes):
            self._close_pipe(fd)
        self._maybe_finish()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _maybe_finish(self) -> None:
        if not self.exited or self.pipes or self.settled:
            return
        if self.terminating:
            self._signal_group(signal.SIGKILL)  # no survivors; the leader is not reaped yet
        reaped = self.reaped or _reap(self.pid)
        self._settle(reaped)
        if not self.done.done():
            self.done.set_result(reaped)

    def _settle(self, reaped: _Exit | None) -> None:
        self.settled = True
        if self.popen is not None:  # Popen warns about (and later re-waits for) a child it thinks alive
            self.popen.returncode = _exit_code(reaped[0]) if reaped else -signal.SIGKILL
        for timer in self.timers:
            timer.cancel()
        for fd in list(self.pipes):
            self.loop.remove_reader(fd)
            os.close(fd)
        self.pipes.clear()
        if self.pidfd is not None:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def kill_now(self) -> None:
        """Cancellation: kill the whole group at once and reap it."""
        if self.settled:
            return
        self._signal_group(signal.SIGKILL)
        self._drain()  # what it printed before it was stopped belongs to its log
        reaped = self.reaped
        if reaped is None and self.pidfd is not None:
            reaped = _reap(self.pid)
        self._settle(reaped)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    masker: Masker,
    on_line: Callable[[str], None] | None = None,
    max_capture: int = 1_000_000,
    stdout_masker: Masker | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion; never raises for a failing or missing command.

    ``stdout_masker``, when given, masks stdout instead of ``masker`` (a child run's JSON
    document is masked by the child, and must reach its parser intact).
    """
    started = time.monotonic()
    combined = CappedText(max_capture)
    out = _Stream((stdout_masker or masker).stream(), max_capture, combined, on_line)
    err = _Stream(masker.stream(), max_capture, combined, on_line)
    try:
        spawned, out_fd, err_fd = spawn(argv, cwd, env)
    except OSError as exc:
        return _not_started(spawn_error(argv, cwd, exc), started)
    child = _Child(spawned, {out_fd: out, err_fd: err}, timeout)
    try:
        status, cpu_s, peak_rss_kb = await child.done
    except BaseException as exc:
        child.kill_now()
        if isinstance(exc, asyncio.CancelledError):
            keep_partial_log(exc, combined.text())
        raise
    return ProcessResult(
        exit_code=_exit_code(status),
        stdout=out.kept.text(),
        stderr=err.kept.text(),
        combined=combined.text(),
        timed_out=child.timed_out,
        duration_s=time.monotonic() - started,
        cpu_s=cpu_s,
        peak_rss_kb=peak_rss_kb,
        error=f"timed out after {timeout:g}s" if child.timed_out and timeout is not None else None,
    )


def keep_partial_log(stop: BaseException, text: str) -> None:
    """Hand what a stopped attempt printed (decoded, masked) up with the ``CancelledError``
    that stopped it, so the task's log keeps it (see :func:`partial_log`)."""
    if text:
        setattr(stop, _PARTIAL_LOG, text)


def partial_log(stop: BaseException) -> str:
    """What :func:`keep_partial_log` attached to ``stop`` ("" when nothing)."""
    return str(getattr(stop, _PARTIAL_LOG, ""))


def _not_started(error: str, started: float) -> ProcessResult:
    return ProcessResult(
        exit_code=None,
        stdout="",
        stderr="",
        combined="",
        timed_out=False,
        duration_s=time.monotonic() - started,
        cpu_s=0.0,
        peak_rss_kb=0,
        error=error,
    )


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def _reap(pid: int) -> _Exit:
    """Wait for ``pid`` and return its status and resource usage."""
    try:
        _pid, status, usage = os.wait4(pid, 0)
    except ChildProcessError:  # reaped elsewhere: status unknown, as asyncio reports it
        return 255 << 8, 0.0, 0
    rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return status, usage.ru_utime + usage.ru_stime, rss
