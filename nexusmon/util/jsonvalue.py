"""Values every JSON reader accepts: no NaN or infinities, which Python's json writes as bare
``NaN``/``Infinity`` tokens that JavaScript, Go, Rust and SQLite's ``json_extract`` refuse."""

from __future__ import annotations

import json
import math
from typing import Any

#: How a float JSON cannot express is stored: as JavaScript's String() names it.
NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def finite(value: Any) -> Any:
    """``value`` with each NaN or infinite float replaced by its name (``"NaN"``, ``"Infinity"``)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else NON_FINITE[value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def all_finite(value: Any) -> bool:
    """Whether ``value`` holds no NaN or infinite float, however deep."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    return True


def as_text(value: Any) -> str:
    """A parameter read as text, the way a template renders it: booleans as ``true``/``false``,
    null as empty, lists and mappings as JSON, anything else as ``str``."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
