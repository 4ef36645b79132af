"""Messages for undefined names: the name as the template wrote it, and a close name beside it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nexusmon.spec.schema_check import closest

if TYPE_CHECKING:
    from jinja2 import UndefinedError


def undefined_message(exc: UndefinedError, source: str) -> str:
    """``undefined name 'inputs.tga'``: the dotted name as the template wrote it."""
    text = str(exc.message or exc)
    if text.startswith("'") and "' is undefined" in text:
        return f"undefined name {text.split(' is undefined')[0]}"
    for marker in (" has no attribute ", " has no element "):
        if marker in text:
            attr = text.split(marker, 1)[1].strip("'")
            found = re.search(r"([A-Za-z_][\w.\[\]'\"]*)\.\s*" + re.escape(attr) + r"\b", source)
            name = f"{found.group(1)}.{attr}" if found else attr
            return f"undefined name '{name}'"
    return f"undefined: {text}"


def hinted(message: str, context: Mapping[str, Any]) -> str:
    """``undefined name 'inputs.tga'`` plus ``(did you mean 'inputs.tag'?)`` when a name
    beside it in the context is close."""
    found = re.fullmatch(r"undefined name '([^']+)'", message)
    if found is None:
        return message
    *parents, last = found.group(1).split(".")
    node: Any = context
    for depth, part in enumerate(parents, start=1):
        node = _member(node, part)
        if depth >= 2 and parents[0] == "tasks" and getattr(node, "status", None) == "skipped":
            task = ".".join(parents[1:depth])
            return (f"{message} (task '{task}' was skipped, so it has no outputs: "
                    f"`{found.group(1)} | default('')` reads it as empty)")
    names = list(node) if isinstance(node, Mapping) else list(getattr(node, "__struct_fields__", ()))
    close = closest(last, [str(name) for name in names])
    return message if close is None else f"{message} (did you mean '{'.'.join([*parents, close])}'?)"


def _member(node: Any, name: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(name)
    return getattr(node, name, None) if name in getattr(node, "__struct_fields__", ()) else None
