"""Typed mission and rune inputs: from `-i k=v`, `--inputs-file` and defaults."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nexusmon.errors import Diagnostic, InvalidFiles, UsageError
from nexusmon.spec import schema_check
from nexusmon.spec.document import Document
from nexusmon.spec.model import InputSpec
from nexusmon.spec.schema_check import did_you_mean
from nexusmon.util.jsonvalue import nul_paths

#: Why a value does not fit an input, or None. It lives in spec, where loading checks
#: every input default with it; compile.expand checks rune call values with it too.
type_problem = schema_check.type_problem

_PLACEHOLDERS: dict[str, Any] = {
    "string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {},
}


_INTEGER = re.compile(r"[-+]?[0-9]+")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def parse_cli_value(spec: InputSpec, text: str) -> Any:
    """Read a `-i name=value` value as a YAML scalar. For a string input, only a quoted
    scalar is unquoted (`"prod"` is prod); anything else stays verbatim, so `1.10`,
    `yes` or `~` arrive as typed rather than as 1.1, true or null."""
    quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
    if spec.type == "string" and not quoted:
        return text
    numeric = spec.type in ("integer", "number")
    if numeric and _INTEGER.fullmatch(text.strip()):  # decimal: YAML 1.1 reads 012 as 10
        return int(text)
    if spec.type == "number" and _DECIMAL.fullmatch(text.strip()):  # YAML 1.1 wants 1.5e+3
        return float(text)
    import yaml  # ~12 ms, kept off the start of commands that read no YAML (see spec.doccache)

    from nexusmon.spec.yamlload import MAX_DEPTH, too_deep  # loads PyYAML too

    if too_deep(text) is not None:
        raise UsageError(f"-i {spec.name}: the value is nested too deeply (more than {MAX_DEPTH} levels)")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if numeric and _yaml11_number(value, text):
        return text  # 1:20 (80 in YAML 1.1), 0x10, 1_000: refused as written, never read as another number
    return value if spec.type != "string" or isinstance(value, str) else text


def _yaml11_number(value: Any, text: str) -> bool:
    """A finite number YAML 1.1 read from a spelling that is not a plain decimal."""
    plain = isinstance(value, (int, float)) and not isinstance(value, bool)
    return plain and math.isfinite(value) and not _DECIMAL.fullmatch(text.strip())


def split_assignments(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-i expects name=value, got {pair!r}")
        values[name.strip()] = value
    return values


def resolve_inputs(
    specs: tuple[InputSpec, ...],
    cli: Mapping[str, str],
    from_file: Mapping[str, Any],
    where: str,
    origins: Mapping[str, Document] | None = None,
) -> dict[str, Any]:
    """Typed values for every input; unknown, missing or mistyped inputs are usage errors.

    A value ``origins`` traces to an inputs file is reported located in that file instead.
    """
    by_name = {s.name: s for s in specs}
    origins = origins or {}
    for name in list(cli) + list(from_file):
        if name not in by_name:
            hint = did_you_mean(name, by_name)
            message = f"{where} has no input '{name}'"
            if name not in cli and name in origins:
                raise InvalidFiles([Diagnostic(origins[name].locate_key((name,)), message, hint)])
            raise UsageError(message + (f" ({hint})" if hint else ""))
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name in cli:
            value = parse_cli_value(spec, cli[spec.name])
            if nul_paths(value):
                raise UsageError(f"-i {spec.name}: the value contains a NUL byte, which no script, "
                                 "argument or environment variable can hold")
        elif spec.name in from_file:
            value = from_file[spec.name]
        elif spec.has_default:
            value = spec.default
        else:
            raise UsageError(f"{where} needs input '{spec.name}' (give it with -i {spec.name}=...)")
        problem = type_problem(spec, value)
        if problem:
            origin = None if spec.name in cli else origins.get(spec.name)
            if origin is not None:
                raise InvalidFiles([Diagnostic(origin.locate((spec.name,)), problem)])
            raise UsageError(problem)
        values[spec.name] = value
    return values


def placeholder_inputs(specs: tuple[InputSpec, ...]) -> dict[str, Any]:
    """Values good enough to validate a mission without its required inputs."""
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.has_default:
            values[spec.name] = spec.default
        elif spec.enum:
            values[spec.name] = spec.enum[0]
        else:
            values[spec.name] = _PLACEHOLDERS.get(spec.type, "")
    return values


def read_inputs_files(paths: Sequence[str]) -> tuple[dict[str, Any], dict[str, Document]]:
    """The values of several `--inputs-file`s, a later file overriding what it repeats
    (as `helm -f a -f b`), and the file each value came from."""
    values: dict[str, Any] = {}
    origins: dict[str, Document] = {}
    for path in paths:
        doc = read_inputs_file(path)
        values.update(doc.data or {})
        origins.update(dict.fromkeys(doc.data or {}, doc))
    return values, origins


def read_inputs_file(path: str) -> Document:
    """The mapping an `--inputs-file` holds (UTF-8 YAML); anything else is a usage error.

    It is read by the workspace files' loader: a YAML error or a duplicate key is an
    ``InvalidFiles`` error located in it, and dates stay text. The document's data is
    a mapping or None (an empty file).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read inputs file {path}: {exc.strerror}") from None
    # PyYAML (~12 ms to import) is kept off the start of commands that read no YAML (see spec.doccache).
    from nexusmon.spec.yamlload import parse_yaml

    doc = parse_yaml(_utf8_text(raw, path), path)
    data = doc.data
    if data is not None and not isinstance(data, dict):  # keys are strings: the loader refuses any other
        raise UsageError(f"inputs file {path} must hold a mapping of input names to values")
    nuls = nul_paths(data)
    if nuls:
        raise InvalidFiles(_nul_diagnostic(doc, at) for at in nuls)
    return doc


def _nul_diagnostic(doc: Document, at: tuple[Any, ...]) -> Diagnostic:
    hint = "no script, argument or environment variable can hold one"
    if len(at) == 1 and "\x00" in at[0]:
        return Diagnostic(doc.locate_key(at), f"input name {at[0]!r} contains a NUL byte", hint)
    return Diagnostic(doc.locate(at), f"input '{at[0]}' contains a NUL byte", hint)


def _utf8_text(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise UsageError(
            f"inputs file {path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, "
            f"column {column}"
        ) from None
