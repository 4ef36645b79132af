"""SHA-256 digests of source files, remembered by what ``stat`` says about each file.

A task's fingerprint covers the content of its ``sources``; reading and hashing
every one of them on every run costs the most in an up-to-date re-run (and a
lot with big data files). Like git's index and DVC's state, a digest is reused
while the file's size, inode, modification and change times are those it was
hashed with. The change time (``ctime``) cannot be set back by ``touch`` or
``cp -p``, so a rewrite that keeps the modification time still reads as changed.

A file modified less than :data:`SETTLE_S` before it was hashed is not
remembered: a second write within the timestamps' granularity could keep every
stat field while changing the content. Such a file is simply hashed again next time.

The memo is one msgpack file in the state directory, written whole (temp file
and rename) when a run or plan learned something, best effort: a missing or
damaged memo only means hashing again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import msgspec

from nexusmon.util.atomic import write_atomic

FILE = "source-digests.msgpack"
FORMAT = 1
SETTLE_S = 2.0
#: Past this many entries, a save keeps only the files this process looked at.
MAX_ENTRIES = 100_000

_Stamp = tuple[int, int, int, int]  # size, inode, mtime_ns, ctime_ns


class _Memo(msgspec.Struct, array_like=True):
    format: int
    digests: dict[str, tuple[_Stamp, str]]


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(_Memo).decode


class DigestMemo:
    """File digests by stat; ``state_dir`` None (or missing) remembers within this process only."""

    def __init__(self, state_dir: Path | None) -> None:
        self._path = state_dir / FILE if state_dir is not None and state_dir.is_dir() else None
        self._digests: dict[str, tuple[_Stamp, str]] | None = None
        self._seen: set[str] = set()
        self._changed = False

    def digest(self, path: str, rel: str) -> str:
        """The SHA-256 hex digest of the file at ``path`` (named ``rel`` in the memo)."""
        known = self._load()
        started = time.time_ns()
        stamp = _stamp(os.stat(path))
        self._seen.add(rel)
        remembered = known.get(rel)
        if remembered is not None and remembered[0] == stamp:
            return remembered[1]
        digest = _hash_file(path)
        if max(stamp[2], stamp[3]) < started - int(SETTLE_S * 1e9):
            known[rel] = (stamp, digest)
            self._changed = True
        elif remembered is not None:
            del known[rel]
            self._changed = True
        return digest

    def save(self) -> None:
        """Write what was learned; best effort, never an error."""
        if self._path is None or not self._changed or self._digests is None:
            return
        digests = self._digests
        if len(digests) > MAX_ENTRIES:
            digests = {rel: entry for rel, entry in digests.items() if rel in self._seen}
        with contextlib.suppress(OSError, msgspec.EncodeError):
            write_atomic(self._path, _ENCODE(_Memo(FORMAT, digests)), durable=False)
        self._changed = False

    def _load(self) -> dict[str, tuple[_Stamp, str]]:
        if self._digests is None:
            self._digests = {}
            if self._path is not None:
                with contextlib.suppress(OSError, msgspec.DecodeError):
                    memo = _DECODE(self._path.read_bytes())
                    if memo.format == FORMAT:
                        self._digests = memo.digests
        return self._digests


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
