"""Validate documents against the shipped JSON Schemas and turn failures into located diagnostics."""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

import msgspec
from fastjsonschema import JsonSchemaException

from nexusmon.errors import Diagnostic
from nexusmon.schemas import load_schema
from nexusmon.spec.document import Document, JsonPath
from nexusmon.spec.model import InputSpec
from nexusmon.spec.parse import parse_input
from nexusmon.util.jsonvalue import all_finite

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping", "null": "nothing",
}
INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object")
#: What a key of these mappings names, for "invalid task id 'a b'".
_NAME_KINDS = {"tasks": "task id", "inputs": "input name", "env": "environment variable name"}
_NAME_RULES = {
    "^[A-Za-z_][A-Za-z0-9_]*$": "use letters, digits and '_', not starting with a digit",
    "^[A-Za-z0-9_][A-Za-z0-9_-]*$": "use letters, digits, '_' and '-', not starting with '-'",
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
    close = closest(word, choices)
    return f"did you mean '{close}'?" if close else None


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word``, if any is close enough to be what was meant."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def schema_diagnostics(doc: Document, kind: str) -> list[Diagnostic]:
    """Every schema violation in ``doc``, at most one per location.

    Missions and runes also get their input declarations checked: a ``default`` or an
    ``enum`` value that does not fit the input (which JSON Schema cannot say).
    """
    problems = input_diagnostics(doc) if kind in ("mission", "rune") else []
    try:
        fast_validator(kind)(doc.data)
        return problems
    except JsonSchemaException:
        pass  # explain it below, with every problem located
    found: dict[tuple[int, int, str], Diagnostic] = {}
    for error in validator(kind).iter_errors(doc.data):
        for diag in _explain(doc, kind, error):
            found.setdefault((diag.location.line, diag.location.col, diag.message), diag)
    for diag in problems:
        found.setdefault((diag.location.line, diag.location.col, diag.message), diag)
    return list(found.values())


def input_diagnostics(doc: Document) -> list[Diagnostic]:
    """Each input ``default`` or ``enum`` value of ``doc`` that its own input would refuse."""
    inputs = doc.data.get("inputs") if isinstance(doc.data, dict) else None
    problems: list[Diagnostic] = []
    for name, data in inputs.items() if isinstance(inputs, dict) else ():
        if _checkable(data):
            problems += _input_problems(parse_input(doc, ("inputs",), name, data))
    return problems


def _checkable(data: Any) -> bool:
    """Whether an input declaration is sound enough to check values against (the schema says the rest)."""
    if not isinstance(data, dict) or data.get("type", "string") not in INPUT_TYPES:
        return False
    return "enum" not in data or (isinstance(data["enum"], list) and bool(data["enum"]))


def _input_problems(spec: InputSpec) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    any_member = msgspec.structs.replace(spec, enum=None)
    for index, member in enumerate(spec.enum or ()):
        problem = type_problem(any_member, member)
        if problem:
            problems.append(Diagnostic(spec.loc("enum", index), f"enum value of {problem}"))
    if spec.has_default:
        problem = type_problem(spec, spec.default)
        if problem:
            problems.append(Diagnostic(spec.loc("default"), f"default of {problem}"))
    return problems


def type_problem(spec: InputSpec, value: Any) -> str | None:
    """Why ``value`` does not fit ``spec``, or None; values are shown as YAML writes them."""
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }.get(spec.type, True)
    if not ok:
        return f"input '{spec.name}' expects {spec.type}, got {_as_yaml(value)}"
    if not all_finite(value):  # `.inf`, `.nan`: no JSON document or ledger column can hold them
        return f"input '{spec.name}' expects finite numbers, got {_as_yaml(value)}"
    if spec.enum is not None and value not in spec.enum:
        choices = ", ".join(v if isinstance(v, str) else _as_yaml(v) for v in spec.enum)
        return f"input '{spec.name}' must be one of {choices}, got {_as_yaml(value)}"
    return None


def _as_yaml(value: Any) -> str:
    """``value`` in YAML flow style (``true``, ``null``, ``.inf``, ``[1, 'a']``); strings quoted."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_as_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_as_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)  # numbers; a date from `-i d=2024-01-01` reads 2024-01-01


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
    if list(error.schema_path)[-2:-1] == ["propertyNames"] and isinstance(error.instance, str):
        return [_bad_name(doc, path, error, where)]
    return [Diagnostic(doc.locate(path), _message(error) + where, _hint(error))]


def _bad_name(doc: Document, path: JsonPath, error: ValidationError, where: str) -> Diagnostic:
    """A key the mapping's ``propertyNames`` refuses, at the key itself (the error's path is the mapping)."""
    name: str = error.instance
    label = _NAME_KINDS.get(str(path[-1]) if path else "", "name")
    pattern = error.validator_value if error.validator == "pattern" else None
    hint = _NAME_RULES.get(pattern, f"names must match {pattern}") if pattern else None
    return Diagnostic(doc.locate_key(path + (name,)), f"invalid {label} {_show(name)}{where}", hint)


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
