"""Text inside the markdown nexusmon writes (step summaries, policy diff comments)."""

from __future__ import annotations

import re

_BACKTICKS = re.compile("`+")
#: Characters no markdown renders as text (a terminal colour code, NUL, BEL): shown as escapes.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def escaped_char(match: re.Match[str]) -> str:
    """The matched character as a visible escape: ``\\x1b``, ``\\ufffe``."""
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` as plain markdown on one line: line breaks as spaces, control characters escaped."""
    return _CONTROL.sub(escaped_char, " ".join(text.splitlines()))


def code_span(text: str, in_table: bool = True) -> str:
    """``text`` as a code span (inside a markdown table cell unless ``in_table`` is false):
    backticks, pipes and line breaks kept from ending the span, the cell or the row; HTML
    in a code span is shown as text."""
    text = _CONTROL.sub(escaped_char, text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    return span.replace("|", "\\|") if in_table else span
