"""A parsed YAML file: plain data plus the line:column of every key and value."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Union

from msgspec import Struct, field

from nexusmon.errors import Diagnostic, InvalidFiles, Location

JsonPath = tuple[Union[str, int], ...]
Mark = tuple[int, int]  # 1-based (line, col)
MAX_FILE_BYTES = 2 * 1024 * 1024


class Document(Struct, frozen=True):
    """One workspace file. ``data`` holds only JSON-compatible values."""

    path: str  # as shown in messages: relative to the workspace root when inside it
    data: Any
    text: str
    values: dict[JsonPath, Mark] = field(default_factory=dict)
    keys: dict[JsonPath, Mark] = field(default_factory=dict)

    def __repr__(self) -> str:  # the text and the position maps would drown it
        return f"Document({self.path!r})"

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def data_at(self, path: JsonPath) -> Any:
        """The raw value at ``path``, or None when there is none."""
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def locate(self, path: JsonPath) -> Location:
        """Where the value at ``path`` starts; the nearest located parent otherwise."""
        return self._find(self.values, path)

    def locate_line(self, path: JsonPath, line: int | None) -> Location:
        """Where line ``line`` (1-based) of the text at ``path`` is written, at its indentation.

        Only a literal block scalar (``|``) keeps its lines as the file's lines; any other
        value, or no line, is located where the value starts.
        """
        start = self.locate(path)
        if not line or tuple(path) not in self.values:
            return start
        lines = self.text.splitlines()
        target = start.line + line
        if target > len(lines) or lines[start.line - 1][start.col - 1:start.col] != "|":
            return start
        text = lines[target - 1]
        return Location(self.path, target, len(text) - len(text.lstrip(" ")) + 1)

    def locate_key(self, path: JsonPath) -> Location:
        """Where the key naming ``path`` starts (its value for list items)."""
        return self._find(self.keys, path) if path in self.keys else self.locate(path)

    def _find(self, table: dict[JsonPath, Mark], path: JsonPath) -> Location:
        probe = tuple(path)
        while probe and probe not in table:
            probe = probe[:-1]
        line, col = table.get(probe, (1, 1))
        return Location(self.path, line, col)


def read_text(file: Path, shown_as: str) -> str:
    """The text of ``file`` (a Path); unreadable, oversized or non-UTF-8 files are located errors."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        link = f" (a symbolic link to {os.readlink(file)})" if file.is_symlink() else ""
        raise InvalidFiles([Diagnostic(Location(shown_as), f"cannot read file: {exc.strerror}{link}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidFiles([Diagnostic(Location(shown_as), f"file is larger than {MAX_FILE_BYTES} bytes")])
    try:
        text: str = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        col = len(raw[line_start : exc.start].decode("utf-8", "replace")) + 1  # in characters, as YAML counts
        raise InvalidFiles([Diagnostic(Location(shown_as, line, col), "file is not valid UTF-8")]) from None
    return text


