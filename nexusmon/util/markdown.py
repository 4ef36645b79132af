"""Text inside the markdown nexusmon writes (step summaries, policy diff comments)."""

from __future__ import annotations

import re

_BACKTICKS = re.compile("`+")


def code_span(text: str) -> str:
    """``text`` as a code span inside a markdown table cell: backticks, pipes and line
    breaks kept from ending the span, the cell or the row."""
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")
