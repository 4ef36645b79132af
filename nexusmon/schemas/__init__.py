"""The JSON Schemas for mission, rune, policy and settings files (shipped as package data)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

KINDS = ("mission", "rune", "policy", "settings")
_HERE = Path(__file__).parent


@cache
def schema_text(kind: str) -> str:
    """The schema file's text, as shipped.

    Read beside this module: nexusmon is installed as files, and importlib.resources
    (with tempfile, shutil and random behind it) would cost every command ~10 ms.
    """
    return (_HERE / f"{kind}.schema.json").read_text(encoding="utf-8")


@cache
def load_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text(kind))
    return schema
