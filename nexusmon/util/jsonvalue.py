"""Values every JSON reader accepts: no NaN or infinities, which Python's json writes as bare
``NaN``/``Infinity`` tokens that JavaScript, Go, Rust and SQLite's ``json_extract`` refuse;
and nothing JSON cannot hold at all (a plugin's outputs may be any Python object)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

#: How a float JSON cannot express is stored: as JavaScript's String() names it.
NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: each NaN or infinite float replaced by its name (``"NaN"``,
    ``"Infinity"``), mapping keys as text, tuples and sets as lists, bytes decoded as UTF-8,
    anything else as its ``str()``. What is stored is then exactly the text secrets are masked in
    (a value the JSON encoder turned into text itself would reach the ledger unmasked)."""
    if isinstance(value, str):
        return storable(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else NON_FINITE[value]
    if isinstance(value, Mapping):
        return {storable(k if isinstance(k, str) else str(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return storable(str(value))


def storable(text: str) -> str:
    """``text`` with each lone surrogate written as its ``\\udcff`` escape. Python reads bytes
    that are not UTF-8 that way (``os.listdir`` of such a file name, ``surrogateescape``), and
    no UTF-8 file, SQLite text or JSON document can hold one."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


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


def nul_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a string holding a NUL byte sits in ``value`` (a key counts as its entry's path).

    No script, command-line argument, environment variable or file name can hold one.
    """
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    found: list[tuple[Any, ...]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                found.append((*path, key))
            found += nul_paths(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += nul_paths(item, (*path, index))
    return found
