"""Workspace files already parsed and schema-checked, kept by the digest of their text.

Parsing and checking a 1,000-task mission takes about 35 ms; reading its entry
back takes about 3 ms, and every command starts by loading the whole workspace.

- An entry's key hashes the file's text, its kind (mission, rune, ...) and this
  nexusmon's version and entry format, so an edited file, or another nexusmon,
  never meets an old entry.
- Only files that parsed and passed their schema are kept: an invalid file is
  parsed every time, so its errors are always found and located afresh.
- Entries live in ``documents/`` of the state directory, and only once that
  directory exists (``validate`` and ``plan`` create nothing). They are
  msgpack, written whole or not at all; an entry that cannot be read is a miss.
- Entries not written for ``PRUNE_AFTER_S`` are removed when a new one is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import msgspec

from nexusmon import __version__
from nexusmon.spec.document import Document, JsonPath, Mark
from nexusmon.util.atomic import write_atomic

#: Bump when parsing, a schema or schema_check (the checks a kept file skips) changes.
FORMAT = 2
FOLDER = "documents"
PRUNE_AFTER_S = 14 * 86400.0


class _Entry(msgspec.Struct, array_like=True):
    """A Document without what the reader already has (its path and text)."""

    data: Any
    values: dict[JsonPath, Mark]
    keys: dict[JsonPath, Mark]


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(_Entry).decode


class DocumentCache:
    """Parsed documents by content; ``folder`` None keeps nothing."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._pruned = False

    @classmethod
    def of_state_dir(cls, state_dir: Path) -> DocumentCache:
        """The cache inside ``state_dir``, inert until that directory exists."""
        return cls(state_dir / FOLDER if state_dir.is_dir() else None)

    def get(self, kind: str, text: str, shown: str) -> Document | None:
        """The checked document of ``text``, named ``shown``; None when it is not kept."""
        if self.folder is None:
            return None
        try:
            entry = _DECODE((self.folder / _key(kind, text)).read_bytes())
        except (OSError, msgspec.DecodeError):
            return None
        return Document(shown, entry.data, text, entry.values, entry.keys)

    def put(self, kind: str, doc: Document) -> None:
        """Keep ``doc`` (parsed and valid as ``kind``); best effort, never an error."""
        if self.folder is None:
            return
        try:
            blob = _ENCODE(_Entry(doc.data, doc.values, doc.keys))
        except (msgspec.EncodeError, OverflowError, UnicodeEncodeError):
            return  # a value msgpack cannot hold (a huge integer, a lone surrogate): parse it each time
        with contextlib.suppress(OSError):
            self.folder.mkdir(exist_ok=True)
            write_atomic(self.folder / _key(kind, doc.text), blob, durable=False)
            self._prune()

    def _prune(self) -> None:
        if self._pruned or self.folder is None:
            return
        self._pruned = True
        cutoff = time.time() - PRUNE_AFTER_S
        with os.scandir(self.folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)


def _key(kind: str, text: str) -> str:
    h = hashlib.sha256(f"nexusmon {__version__} format {FORMAT} {kind}\0".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()
