"""Starting a task's process: ``posix_spawn`` when it can, ``subprocess.Popen`` otherwise.

Both start ``argv`` the same way: in a new session (so the whole group can be
signalled), stdin from /dev/null, stdout and stderr on two non-blocking pipes
whose read ends are returned, descriptors the runner inherited closed, and
SIGPIPE and SIGXFSZ back at their defaults. :mod:`nexusmon.util.process`
follows the started process to its end.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from msgspec import Struct


class Started(Struct, frozen=True):
    """A started child: its pid, and the Popen object when Popen started it."""

    pid: int
    popen: subprocess.Popen[bytes] | None  # None when started by posix_spawn


def spawn(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[Started, int, int]:
    """Start ``argv`` in a new session; returns it and the read ends of its pipes."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        started = _posix_spawn(argv, cwd, env, out_w, err_w) or _popen(argv, cwd, env, out_w, err_w)
    except BaseException as exc:
        os.close(out_r)
        os.close(err_r)
        if isinstance(exc, OSError) and exc.errno == errno.E2BIG:
            raise OSError(errno.E2BIG, too_long(argv, env)) from None
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    return started, out_r, err_r


def _popen(argv: Sequence[str], cwd: Path, env: Mapping[str, str], out_w: int, err_w: int) -> Started:
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=out_w,
        stderr=err_w,
        start_new_session=True,
    )
    return Started(proc.pid, proc)


def _posix_spawn(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], out_w: int, err_w: int,
) -> Started | None:
    """The cheap start: ``posix_spawn`` (one vfork-style clone, no Python in between).

    It does what :func:`_popen` does (new session, stdin from /dev/null, pipes on 1
    and 2, inherited descriptors closed, SIGPIPE and SIGXFSZ back to their
    defaults, PATH looked up in ``env``) and applies only in the common case: Linux,
    the task's directory is ours (posix_spawn cannot change it before Python 3.13)
    and the program is found. Anything else, including a failed start, returns None
    so that Popen starts it or reports the error in its own words.
    """
    if not _POSIX_SPAWN or not argv or _here() != os.fspath(cwd):
        return None
    program, start = argv[0], os.posix_spawn
    if os.sep not in program:
        if env.get("PATH") == os.environ.get("PATH"):
            start = os.posix_spawnp  # the C library searches our PATH, which is the task's
        else:
            found = shutil.which(program, path=os.pathsep.join(os.get_exec_path(env)))
            if found is None:
                return None
            program = found
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
        *((os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()),
    ]
    try:
        pid = start(program, list(argv), env, file_actions=actions, setsid=True,
                    setsigdef=_DEFAULT_SIGNALS)
    except OSError:
        return None
    return Started(pid, None)


_POSIX_SPAWN = sys.platform == "linux" and hasattr(os, "posix_spawn")
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)


def _here() -> str | None:
    """The runner's working directory; None when it was removed under us."""
    try:
        return os.getcwd()
    except OSError:
        return None


def _inheritable_fds() -> list[int]:
    """Open descriptors above 2 that a child would inherit (Popen's close_fds closes them).

    Descriptors Python opens are not inheritable (PEP 446); these come from whoever
    started nexusmon (a make jobserver, say) or from code that asked for them.
    """
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # the listing's own descriptor, closed by now
                pass
    return found


#: The kernel's limit on one argument or one NAME=value string (MAX_ARG_STRLEN, 32 pages of 4 KiB,
#: the terminating NUL included); all of them together must also fit in ARG_MAX.
MAX_ARG_STRLEN = 131072


def too_long(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Why the kernel refused ``argv`` and ``env`` (E2BIG), naming the culprit when there is one."""
    for name, value in env.items():
        size = len(os.fsencode(name)) + 1 + len(os.fsencode(value))
        if size >= MAX_ARG_STRLEN:
            return (f"environment variable {name} is {size} bytes, over the system's limit of "
                    f"{MAX_ARG_STRLEN - 1} bytes for one variable")
    for number, arg in enumerate(argv):
        size = len(os.fsencode(arg))
        if size >= MAX_ARG_STRLEN:
            return (f"argument {number} is {size} bytes, over the system's limit of "
                    f"{MAX_ARG_STRLEN - 1} bytes for one argument")
    return "arguments and environment together are over the system's limit (ARG_MAX)"


def spawn_error(argv: Sequence[str], cwd: Path, exc: OSError) -> str:
    name = argv[0] if argv else ""
    if exc.filename is not None and str(exc.filename) == str(cwd):
        return f"working directory not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {name}"
    if isinstance(exc, PermissionError):
        if os.sep in name and os.path.isdir(os.path.join(cwd, name)):
            return f"is a directory: {name}"
        return f"permission denied: {name}"
    return f"cannot start {name}: {exc.strerror or exc}"
