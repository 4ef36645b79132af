"""Secret masking: every secret value becomes ``***`` in text nexusmon keeps or shows.

:class:`Masker` masks whole texts and JSON-like values; :class:`StreamMasker`
masks output that arrives in chunks. It holds back only a tail that could be
the start of a secret (at most ``len(longest secret) - 1`` characters), so a
secret split across two chunks is still caught while ordinary output flows
through at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from re import Pattern
from typing import Any

MASK = "***"
KEY_MIN = 4  # secrets shorter than this are not masked inside mapping keys (names)
LINE_MIN = 4  # lines of a multi-line secret shorter than this are not masked on their own


class Masker:
    """Replaces each non-empty secret value with ``***``, longest secret first."""

    __slots__ = ("_keys", "firsts", "longest", "pattern", "secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(
            sorted({part for s in secrets for part in _parts(s)}, key=lambda s: (-len(s), s))
        )
        # Longest first in the alternation: where two secrets start at the same
        # place, the longer one wins and no fragment of it is left visible.
        self.pattern: Pattern[str] | None = (
            re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None
        )
        self.longest = len(self.secrets[0]) if self.secrets else 0
        self.firsts = frozenset(s[0] for s in self.secrets)
        long_enough = [s for s in self.secrets if len(s) >= KEY_MIN]
        self._keys = Masker(long_enough) if long_enough != list(self.secrets) else self

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        if self.pattern is None:
            return text
        return self.pattern.sub(MASK, text)

    def mask_value(self, value: Any) -> Any:
        """A copy of a JSON-like value (dicts, lists, strings) with secrets masked."""
        if self.pattern is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            # Keys are names (output keys, parameters): a one-letter secret masked in them
            # would garble every name (`exit_code` -> `e***it_code`) and break later tasks.
            return {self._keys.mask_value(k): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.mask_value(v) for v in value]
        return value

    def stream(self) -> StreamMasker:
        """A fresh :class:`StreamMasker` for one output stream."""
        return StreamMasker(self)


def _parts(secret: str) -> set[str]:
    """What to mask for ``secret``: the value without a final newline, and each line of a
    multi-line value (a PEM key printed line by line, as GitHub Actions masks them) except
    lines shorter than LINE_MIN (a lone ``}`` of a JSON secret would garble every log);
    each also as it reads escaped inside a JSON string or a Python repr."""
    value = secret.rstrip("\r\n")
    if not value:
        return set()
    lines = value.splitlines()
    parts = {value} if len(lines) == 1 else {
        value, *(line.strip() for line in lines if len(line.strip()) >= LINE_MIN)}
    return {escaped for part in parts for escaped in _escaped_forms(part)}


def _escaped_forms(text: str) -> set[str]:
    """``text`` and how JSON and ``repr`` write it inside quotes: a value with a quote, a
    backslash, a newline or non-ASCII text reads differently in a JSON document, a log
    line that prints one, or an error message that quotes a value with ``!r``."""
    return {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
            repr(text)[1:-1], ascii(text)[1:-1]}


class StreamMasker:
    """Masks chunked text; ``feed`` returns what is safe to show, ``flush`` the rest."""

    __slots__ = ("_masker", "_pending")

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._pending = ""

    def feed(self, chunk: str) -> str:
        """Masked text that can be emitted now; a possible secret prefix is held back."""
        pattern = self._masker.pattern
        if pattern is None:
            return chunk
        text = self._pending + chunk
        held = self._held_from(text)
        # A secret starting before `held` cannot run past the end of `text`
        # (else a longer tail would be a secret prefix), so those matches are final.
        parts = []
        pos = 0
        for match in pattern.finditer(text):
            if match.start() >= held:
                break
            parts.append(text[pos : match.start()])
            parts.append(MASK)
            pos = match.end()
        end = max(held, pos)
        parts.append(text[pos:end])
        self._pending = text[end:]
        return "".join(parts)

    def flush(self) -> str:
        """Everything still held back, masked."""
        text, self._pending = self._pending, ""
        return self._masker.mask(text)

    def _held_from(self, text: str) -> int:
        """Start of the longest tail of ``text`` that is a proper prefix of a secret."""
        masker = self._masker
        for i in range(max(0, len(text) - masker.longest + 1), len(text)):
            if text[i] in masker.firsts:
                tail = text[i:]
                if any(s.startswith(tail) and s != tail for s in masker.secrets):
                    return i
        return len(text)
