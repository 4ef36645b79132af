"""A worker's ``params_schema`` checked against a task's rendered ``with``.

``validate`` (and every compile) checks parameters whose values are known
then; the engine checks again, after rendering, the parameters of a task whose
templates read run-time values (upstream outputs), before the worker sees them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import fastjsonschema
from msgspec import Struct

from nexusmon.util.params_schema import compile_params_schema


class ParamsComplaint(Struct, frozen=True):
    """Why parameters do not fit a worker's schema: where inside `with`, and what is wrong."""

    at: tuple[Any, ...]  # path inside `with` (empty: the whole mapping)
    message: str  # "with.count must be integer"
    value: Any = None  # the value at fault, when the schema names one


def params_complaint(worker: Any, params: Mapping[str, Any]) -> ParamsComplaint | None:
    """What is wrong with ``params`` for ``worker``'s ``params_schema``; None when they fit
    or the worker has no schema."""
    schema = getattr(worker, "params_schema", None)
    if not schema:
        return None
    try:
        _validator(id(worker), worker)(dict(params))
    except fastjsonschema.JsonSchemaValueException as exc:
        message = exc.message.replace("data.", "with.", 1).replace("data ", "with ", 1)
        return ParamsComplaint(tuple(exc.path[1:]), message, exc.value)
    except fastjsonschema.JsonSchemaException as exc:
        return ParamsComplaint((), str(exc))
    except RecursionError:  # a $ref that refers to itself without end
        return ParamsComplaint((), "its params_schema refers to itself without end")
    return None


@lru_cache(maxsize=256)
def _validator(key: int, worker: Any) -> Callable[[Any], Any]:
    """A compiled validator per worker instance (``key`` is its id; the worker keeps it alive)."""
    return compile_params_schema(worker.params_schema)
