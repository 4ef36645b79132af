"""Compiling a worker's ``params_schema`` (fastjsonschema), with no network access.

fastjsonschema fetches a ``$ref`` to another document with ``urlopen``; a
plugin's schema is workspace input, so ``validate`` must never reach out to a
URL it names. Every scheme is "handled" here, by refusing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class _NoRemoteRefs(dict):  # type: ignore[type-arg]
    """fastjsonschema's ref handlers: every scheme is "handled", by refusing it (no URL is fetched)."""

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        return _refuse_remote


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"$ref to {uri} is not allowed (only references inside the schema)")


def compile_params_schema(schema: Mapping[str, Any]) -> Callable[[Any], Any]:
    """A validator for a worker's ``params_schema``; never fetches a remote ``$ref``."""
    import fastjsonschema

    check: Callable[[Any], Any] = fastjsonschema.compile(dict(schema), handlers=_NoRemoteRefs())
    return check
