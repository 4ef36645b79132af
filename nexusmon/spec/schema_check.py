"""Validate documents against the shipped JSON Schemas and turn failures into located diagnostics."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from fastjsonschema import JsonSchemaException

from nexusmon.errors import Diagnostic
from nexusmon.schemas import load_schema
from nexusmon.spec.document import Document, JsonPath

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping", "null": "nothing",
}


if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError


@cache
def fast_validator(kind: str) -> Callable[[Any], Any]:
    """The generated validator of ``kind`` (see nexusmon.schemas.generate)."""
    module = importlib.import_module(f"nexusmon.schemas.fast_{kind}")
    check: Callable[[Any], Any] = module.validate
    return check


@cache
def validator(kind: str) -> Any:
    """jsonschema's validator, used only to explain an invalid file (it is slow to import)."""
    import jsonschema  # heavy: kept off the path of valid files

    schema = load_schema(kind)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest choice, if any is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def schema_diagnostics(doc: Document, kind: str) -> list[Diagnostic]:
    """Every schema violation in ``doc``, at most one per location."""
    try:
        fast_validator(kind)(doc.data)
        return []
    except JsonSchemaException:
        pass  # explain it below, with every problem located
    found: dict[tuple[int, int, str], Diagnostic] = {}
    for error in validator(kind).iter_errors(doc.data):
        for diag in _explain(doc, kind, error):
            found.setdefault((diag.location.line, diag.location.col, diag.message), diag)
    return list(found.values())


def _explain(doc: Document, kind: str, error: ValidationError) -> list[Diagnostic]:
    path: JsonPath = tuple(error.absolute_path)
    where = _describe(kind, path)
    v = error.validator
    if v == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        return [
            Diagnostic(doc.locate_key(path + (k,)), f"unknown key '{k}'{where}", did_you_mean(k, allowed))
            for k in extra
        ]
    if v == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [Diagnostic(doc.locate(path), f"missing required key '{k}'{where}") for k in missing]
    if v == "oneOf" and _is_task(kind, path):
        if not isinstance(error.instance, dict):
            return []  # its "expected a mapping" error says it all
        present = [k for k in ("run", "worker", "uses") if k in error.instance]
        detail = f" (found {', '.join(present)})" if present else ""
        return [Diagnostic(doc.locate_key(path), f"task '{path[-1]}' must have exactly one of run, worker, uses{detail}")]
    return [Diagnostic(_value_loc(doc, path, error), _message(error) + where, _hint(error))]


def _value_loc(doc: Document, path: JsonPath, error: ValidationError) -> Any:
    if error.validator == "propertyNames":
        bad = error.instance
        parent = path
        return doc.locate_key(parent + (bad,)) if isinstance(bad, str) else doc.locate(parent)
    return doc.locate(path)


def _message(error: ValidationError) -> str:
    v, inst = error.validator, error.instance
    if v == "type":
        want = error.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        return f"expected {' or '.join(_TYPE_NAMES.get(w, w) for w in wants)}, got {_kind_of(inst)}"
    if v == "enum":
        return f"{_show(inst)} is not one of {', '.join(str(x) for x in error.validator_value)}"
    if v == "pattern":
        return f"{_show(inst)} does not match the pattern {error.validator_value}"
    if v == "propertyNames":
        return f"invalid name {_show(inst)}"
    if v in ("oneOf", "anyOf"):
        return f"{_show(inst)} is not valid here"
    if v in ("minimum", "exclusiveMinimum", "maximum"):
        return f"{_show(inst)} is out of range ({v} {error.validator_value})"
    if v in ("minProperties", "minItems", "minLength"):
        return "must not be empty"
    if v == "uniqueItems":
        return "has duplicate items"
    return " ".join(error.message.split())


def _hint(error: ValidationError) -> str | None:
    if error.validator == "enum" and isinstance(error.instance, str):
        return did_you_mean(error.instance, [str(x) for x in error.validator_value])
    if error.validator in ("oneOf", "anyOf") and error.schema.get("oneOf") and all(
        s.get("type") in ("string", "array") for s in error.schema["oneOf"]
    ):
        return "expected a string or a list of strings"
    return None


def _describe(kind: str, path: JsonPath) -> str:
    if _is_task(kind, path[:2]) and len(path) >= 2:
        return f" in task '{path[1]}'"
    if not path:
        return f" in {kind}"
    return ""


def _is_task(kind: str, path: JsonPath) -> bool:
    return kind in ("mission", "rune") and len(path) == 2 and path[0] == "tasks"


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
