"""``python -m nexusmon.child PIDFILE ARG...``: the process of a child run.

The ``mission`` worker starts child runs through this entry point rather than
``python -m nexusmon``: it writes its pid to PIDFILE, then is ``nexusmon ARG...``
in the same process. The worker needs the pid to stop a child run the way Ctrl-C
stops a run: SIGTERM to the child's runner, which records ``interrupted`` and
ends its own tasks (they live in sessions of their own, out of reach of a signal
to the runner's group). SIGTERM means the same here before the scheduler starts
as while it runs: the run is interrupted, not killed mid-write.

A child outlives nothing: when the parent runner dies (SIGKILL, a crash) the child
is re-parented, notices within :data:`WATCH_S` and interrupts itself the same way,
so a ``resume`` of the parent never runs beside an orphaned child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from nexusmon.entry import drop_current_directory

drop_current_directory()  # started as `python -m nexusmon.child` in the workspace

from nexusmon.cli.main import main
from nexusmon.workers.mission import PARENT_PID_ENV

WATCH_S = 0.5


def write_pid(path: str) -> None:
    """Write this process's pid to ``path`` (whole or not at all: written, then renamed)."""
    partial = f"{path}.partial"
    with contextlib.suppress(OSError):  # the parent is gone: its inputs file too, the run says so
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(str(os.getpid()))
        os.replace(partial, path)


def watch_parent(parent: int) -> None:
    """SIGTERM this process once its parent is no longer ``parent`` (it died)."""
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    write_pid(sys.argv[1])
    parent = os.environ.get(PARENT_PID_ENV, "")
    if parent.isdigit():
        threading.Thread(target=watch_parent, args=(int(parent),), daemon=True).start()
    main(sys.argv[2:])
