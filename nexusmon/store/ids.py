"""Run identifiers: unique, and sorted by creation time when compared as strings."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timezone


class _MicrosecondClock:
    """UTC microseconds that never repeat or go backwards within one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def tick(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last


_CLOCK = _MicrosecondClock()


def new_run_id() -> str:
    """A run id such as ``20261121-134700-123456-3f9a``.

    UTC date, time and microseconds (bumped so that ids made by one process
    strictly increase), then 4 random hex digits so that two processes
    starting a run in the same microsecond still get different ids.
    """
    micros = _CLOCK.tick()
    seconds, fraction = divmod(micros, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{fraction:06d}-{secrets.token_hex(2)}"
