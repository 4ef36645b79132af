"""One driver per run: an OS lock on ``<state_dir>/locks/<run_id>.lock``.

``run`` takes the lock before the run's row exists and ``resume`` before it
reads the run's tasks; both hold it until the run is recorded as ended.  The
kernel drops the lock when its process dies, SIGKILL included, so a crashed
runner never leaves a stale lock behind: ``resume`` can take it at once.
``gc`` takes the same lock before it deletes a run, so it can never delete a
run that a live process drives.

The lock is ``fcntl.flock`` on POSIX and ``msvcrt.locking`` on Windows.  The
holder writes its pid into the file (for the message a second driver gets)
and, on POSIX, removes the file when it lets go.  Removing a lock file is safe
because a process that wins the lock checks that the path still names the
file it locked, and tries again when it does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from hashlib import sha256
from pathlib import Path

from nexusmon.errors import NexusmonError, StateError

LOCKS_DIR = "locks"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")
_ATTEMPTS = 20  # a file removed under us this many times in a row is not a race
_PID_WIDTH = 10
_PID_READS = 20

if sys.platform == "win32":
    import msvcrt

    _REMOVE_ON_RELEASE = False  # an open file cannot be removed on Windows

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 1 << 20, os.SEEK_SET)  # lock a byte past the pid: the pid stays readable
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    _REMOVE_ON_RELEASE = True

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held by another open file
            return False
        except OSError:  # a file system without locks: go on unlocked, as before locks existed
            return True
        return True


class RunLocked(NexusmonError):
    """Another live process drives (or is collecting) the run (exit status 2)."""

    def __init__(self, run_id: str, pid: int | None) -> None:
        self.run_id = run_id
        self.pid = pid
        holder = f" (pid {pid})" if pid is not None else ""
        super().__init__(f"run {run_id} is being driven by another nexusmon process{holder}")


class RunLock:
    """A held run lock; :meth:`release` (or leaving the ``with`` block) lets go."""

    __slots__ = ("fd", "path", "run_id")

    def __init__(self, run_id: str, path: Path, fd: int) -> None:
        self.run_id = run_id
        self.path = path
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file (POSIX) and close it, which drops the lock (idempotent)."""
        if self.fd < 0:
            return
        if _REMOVE_ON_RELEASE:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> RunLock:  # noqa: PYI034 (no typing_extensions dependency)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(state_dir: Path, run_id: str) -> Path:
    """The lock file of ``run_id`` (a hashed name for an id that is not a plain file name)."""
    name = run_id if _SAFE_NAME.fullmatch(run_id) else sha256(run_id.encode()).hexdigest()
    return state_dir / LOCKS_DIR / f"{name}.lock"


def acquire(state_dir: Path, run_id: str) -> RunLock:
    """Take the lock of ``run_id`` now, or raise :class:`RunLocked` naming its holder."""
    lock = try_acquire(state_dir, run_id)
    if lock is None:
        raise RunLocked(run_id, holder_pid(state_dir, run_id))
    return lock


def try_acquire(state_dir: Path, run_id: str) -> RunLock | None:
    """The lock of ``run_id``, or None when another live process holds it."""
    path = lock_path(state_dir, run_id)
    for _ in range(_ATTEMPTS):
        fd = _open(path)
        if not _try_lock(fd):
            os.close(fd)
            return None
        if _names(path, fd):
            _write_pid(fd)
            return RunLock(run_id, path, fd)
        os.close(fd)  # removed by its last holder between our open and our lock: again
    raise StateError(f"cannot lock run {run_id}: {path} keeps being replaced")


def is_driven(state_dir: Path, run_id: str) -> bool:
    """Whether a live process holds the lock of ``run_id`` (creates no lock file)."""
    if not lock_path(state_dir, run_id).exists():
        return False
    lock = try_acquire(state_dir, run_id)
    if lock is None:
        return True
    lock.release()
    return False


def holder_pid(state_dir: Path, run_id: str) -> int | None:
    """The pid of the process holding the lock, when it can be told.

    The winner of a race writes its pid just after locking, over what a dead
    holder left: a pid that is missing or not alive is read again for a moment.
    """
    for _ in range(_PID_READS):
        pid = _read_pid(lock_path(state_dir, run_id))
        if pid is not None and _alive(pid):
            return pid
        time.sleep(0.005)
    return None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(f"cannot create the run lock {path}: {exc}") from exc


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd`` (it was not removed or replaced)."""
    if not _REMOVE_ON_RELEASE:
        return True
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _write_pid(fd: int) -> None:
    # One write of a fixed width over the old pid: a reader sees the old one or the new one.
    with contextlib.suppress(OSError):  # the pid is for messages only
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid():>{_PID_WIDTH}}\n".encode("ascii"))
