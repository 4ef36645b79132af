"""The JSON Schemas for mission, rune, policy and settings files (shipped as package data)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

KINDS = ("mission", "rune", "policy", "settings")


@cache
def schema_text(kind: str) -> str:
    """The schema file's text, as shipped."""
    return resources.files(__name__).joinpath(f"{kind}.schema.json").read_text(encoding="utf-8")


@cache
def load_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text(kind))
    return schema
