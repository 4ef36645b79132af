"""Typed `with` values: a string that is one lone ``{{ expr }}`` keeps the expression's type.

``flag: "{{ inputs.dry }}"`` reaches a worker as ``false``, not the text
``'false'``; ``json: "{{ inputs.payload }}"`` as the mapping. Text around the
expression, or a second one, makes the value text as usual. A value keeps only
what JSON can hold (mappings with text keys, lists, text, numbers, booleans,
null), so plans, digests and the ledger read it as they read any parameter; a
run-time value seen at compile time keeps its display form
(``<tasks.build.outputs.count>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from msgspec import Struct

from nexusmon.compile.templates import (
    Deferred,
    as_text,
    compile_expression,
    environment,
    is_template,
    lookup,
    render,
    reported,
    simple_parts,
)
from nexusmon.util.jsonvalue import plain


def render_value(source: str, context: Mapping[str, Any]) -> Any:
    """A `with` string rendered: the value of a lone expression, else the rendered text."""
    if not is_template(source):
        return source
    if not (source.startswith("{{") and source.endswith("}}")):
        return render(source, context)
    with reported(source, context):
        parts = simple_parts(source)
        if parts is not None and len(parts) == 1 and not isinstance(parts[0], str):
            found, value = lookup(parts[0], context)
            if found:
                return native(value)
        expression = lone_expression(source)
        if expression is None:
            return render(source, context)
        return native(compile_expression(expression)(**context))


@lru_cache(maxsize=8192)
def lone_expression(source: str) -> str | None:
    """The expression of a template that is exactly one ``{{ expr }}``, else None."""
    tokens = list(environment(False).lex(source))
    begins = sum(1 for _, kind, _ in tokens if kind == "variable_begin")
    if begins != 1 or tokens[0][1] != "variable_begin" or tokens[-1][1] != "variable_end":
        return None
    return source[len(tokens[0][2]):len(source) - len(tokens[-1][2])]


def native(value: Any) -> Any:
    """``value`` as JSON holds it: exact text for text of any kind, lists for sequences and
    iterators, mappings with text keys; a run-time stand-in as its display form; anything
    else as the text it would render to. An undefined value fails as it does in text."""
    from jinja2 import Undefined
    from jinja2.utils import Namespace

    from nexusmon.compile.limits import checked, drawn

    if isinstance(value, Deferred):
        return value.display
    if isinstance(value, str):
        return str(value)  # Raw, Markup, placeholders: plain text
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return plain(value)
    if isinstance(value, Undefined):
        return str(value)  # strict: raises UndefinedError, reported like a render's
    if isinstance(value, Struct):
        value = {name: getattr(value, name) for name in value.__struct_fields__}
    elif isinstance(value, Namespace):
        value = dict(value._Namespace__attrs)
    if isinstance(value, Mapping):
        checked(value, "this value")
        return {as_text(key): native(item) for key, item in value.items()}
    if isinstance(value, Iterable):
        return [native(item) for item in drawn(value, "this value")]
    return as_text(value)
