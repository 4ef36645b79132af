"""Checking that a worker honours the plugin contract, and the problems found loading plugins.

:func:`check_worker` raises a :class:`PluginError` naming the attribute at fault
(and, for a misspelt capability, its place in the list), so the loader can
locate the error at that attribute in the plugin file.
"""

from __future__ import annotations

import inspect
from typing import Any

from msgspec import Struct

from nexusmon.errors import NexusmonError
from nexusmon.govern.evolution import capability_typo
from nexusmon.spec.model import Rank
from nexusmon.util.params_schema import compile_params_schema

CONTRACT = ("name", "capabilities", "risk_level", "requires_approval", "params_schema", "execute")


class PluginProblem(Struct, frozen=True):
    """A plugin that could not be registered, located in its file (1-based line and column)."""

    path: str
    line: int
    message: str
    col: int = 1
    hint: str | None = None


class PluginError(NexusmonError):
    """A worker that does not honour the plugin contract.

    ``attribute`` names the attribute at fault and ``item`` the index of the
    entry at fault in a list attribute (``capabilities``), when known.
    """

    def __init__(
        self, message: str, attribute: str | None = None, item: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.attribute = attribute
        self.item = item
        self.hint = hint


def check_worker(worker: Any) -> None:
    """Raise :class:`PluginError` naming what ``worker`` lacks or gets wrong."""
    missing = [attr for attr in CONTRACT if not hasattr(worker, attr)]
    if missing:
        raise PluginError(f"missing {', '.join(missing)} (see the worker plugin contract)")
    if not isinstance(worker.name, str) or not worker.name:
        raise PluginError("'name' must be a non-empty string", "name")
    name = worker.name
    if not inspect.iscoroutinefunction(worker.execute):
        raise PluginError(f"worker {name!r}: 'execute' must be an async method", "execute")
    _check_risk_level(name, worker.risk_level)
    _check_capabilities(name, worker.capabilities)
    if not isinstance(worker.requires_approval, bool):
        raise PluginError(f"worker {name!r}: 'requires_approval' must be true or false", "requires_approval")
    if worker.params_schema is not None and not isinstance(worker.params_schema, dict):
        raise PluginError(f"worker {name!r}: 'params_schema' must be a dict or None", "params_schema")


def _check_risk_level(name: str, risk: Any) -> None:
    if isinstance(risk, str) and risk in Rank.__members__:
        return
    shown = repr(risk) if isinstance(risk, str) else f"of type {type(risk).__name__}"
    meant = risk.strip().upper() if isinstance(risk, str) else None
    hint = f"did you mean '{meant}'?" if meant in Rank.__members__ else None
    raise PluginError(f"worker {name!r}: risk_level {shown} is not one of E D C B A S",
                      "risk_level", hint=hint)


def _check_capabilities(name: str, capabilities: Any) -> None:
    if not isinstance(capabilities, (list, tuple)) or not all(isinstance(c, str) for c in capabilities):
        raise PluginError(f"worker {name!r}: 'capabilities' must be a list of strings", "capabilities")
    for index, capability in enumerate(capabilities):
        meant = capability_typo(capability)
        if meant:
            raise PluginError(f"worker {name!r}: unknown capability {capability!r}", "capabilities",
                              index, f"did you mean '{meant}'?")


def check_params_schema(worker: Any) -> None:
    """A plugin's ``params_schema`` must compile: a broken one is the plugin's error, not a mission's."""
    if not worker.params_schema:
        return
    try:
        check = compile_params_schema(worker.params_schema)
    except Exception as exc:  # noqa: BLE001 - bad types, bad regexes, bad references...
        raise PluginError(
            f"worker {worker.name!r}: params_schema is not a valid JSON Schema: {' '.join(str(exc).split())}",
            "params_schema",
        ) from None
    try:
        check({})  # a $ref that refers to itself without end recurses on any value
    except RecursionError:
        raise PluginError(f"worker {worker.name!r}: params_schema refers to itself without end",
                          "params_schema") from None
    except Exception:  # noqa: BLE001, S110 - {} not being valid is fine
        pass
