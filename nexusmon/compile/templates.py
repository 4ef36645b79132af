"""Sandboxed Jinja2: strict undefined names, shell-quoting for scripts, static analysis.

Two environments share one configuration: ``shell`` quotes every interpolated
value with :func:`shlex.quote` (an explicit ``| raw`` opts out), ``plain``
renders values as text (for ``with``, ``env`` and ``if``). Jinja is imported
on first use: a mission without templates never loads it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from types import BuiltinMethodType, MethodType
from typing import TYPE_CHECKING, Any, Callable, Union

from msgspec import Struct

from nexusmon.compile.shellcontext import FILTERS, escape, in_context
from nexusmon.compile.undefined import hinted, undefined_message
from nexusmon.util.jsonvalue import as_text as plain_text

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_MARKERS = ("{{", "{%", "{#")


class Raw(str):
    """A value the script author asked to interpolate without shell quoting."""


class Rendered(str):
    """The text of a ``{% set %}`` block or a macro call: its values were quoted when they were
    interpolated into it, so it is not quoted again. Anything made from it (a slice, a filter's
    result, ``~``) is plain text again, and quoted."""


def is_template(text: str) -> bool:
    return any(m in text for m in TEMPLATE_MARKERS)


class Deferred:
    """A run-time value seen at compile time that renders as its ``display`` form
    (``<tasks.build.outputs>``) rather than as its (empty) contents."""

    display = ""


def as_text(value: Any) -> str:
    """How a value reads when interpolated: YAML-style booleans, empty for None,
    lists and mappings as JSON (see :func:`nexusmon.util.jsonvalue.as_text`), a
    run-time stand-in as its display form."""
    if isinstance(value, Deferred):
        return value.display
    if isinstance(value, (BuiltinMethodType, MethodType)):  # `outputs.items` with no output `items`
        raise TypeError(f"'{value.__name__}' is a method of the value it was read from, not a value "
                        f"(no input, output or key of that name)")
    if isinstance(value, (Mapping, list, tuple, set, frozenset)) and not isinstance(value, str):
        from nexusmon.compile.sandbox import to_json

        return to_json(value)
    return plain_text(value)


def _shell_finalize(value: Any) -> str:
    if isinstance(value, (Raw, Rendered)):
        return str(value)
    return shlex.quote(as_text(value))


def _plain_finalize(value: Any) -> str:
    return as_text(value)


def _raw_filter(value: Any) -> Raw:
    return Raw(as_text(value))


@lru_cache(maxsize=2)
def environment(shell: bool) -> ImmutableSandboxedEnvironment:
    """The sandbox that quotes for scripts (``shell``) or renders plain text."""
    from nexusmon.compile.sandbox import make_environment

    env: ImmutableSandboxedEnvironment = make_environment(
        _shell_finalize if shell else _plain_finalize, Rendered, shell)
    env.filters["raw"] = _raw_filter
    if shell:  # see compile.shellcontext: a value inside quotes is escaped for them
        for place, name in FILTERS.items():
            env.filters[name] = _escaping(place)
    return env


def _escaping(place: str) -> Callable[[Any], Raw]:
    def escaped(value: Any) -> Raw:
        return Raw(escape(place, as_text(value)))
    return escaped


class TemplateFailure(Exception):
    """A template that does not parse or render; ``line`` is relative to the template."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class Analysis(Struct, frozen=True):
    """What a template reads: which tasks, whether secrets, whether `raw`."""

    tasks: frozenset[str]
    secrets: bool
    raw: bool
    run_id: bool = False

    @property
    def runtime(self) -> bool:
        """True when the final text is only known at run time."""
        return bool(self.tasks) or self.secrets or self.run_id


STATIC = Analysis(frozenset(), False, False)


_SIMPLE_EXPR = re.compile(r"\{\{ *([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*) *(\| *raw *)?\}\}")
_NOT_NAMES = frozenset({"true", "false", "none", "True", "False", "None", "not", "and", "or", "in",
                        "is", "if", "else"})
Simple = tuple[Union[str, tuple[tuple[str, ...], bool]], ...]


@lru_cache(maxsize=8192)
def simple_parts(source: str) -> Simple | None:
    """Text with only ``{{ a.b.c }}`` / ``{{ a.b | raw }}`` expressions, split into parts.

    Most templates in missions are plain lookups; substituting them with
    Jinja's own ``getattr`` and ``finalize`` gives the same text as a full
    compile, without the compile. Anything else returns None and goes to Jinja.
    """
    parts: list[Any] = []
    last = 0
    for match in _SIMPLE_EXPR.finditer(source):
        literal = source[last:match.start()]
        if is_template(literal):
            return None
        path = tuple(match.group(1).split("."))
        if path[0] in _NOT_NAMES:
            return None
        parts += [literal, (path, bool(match.group(2)))]
        last = match.end()
    if is_template(source[last:]):
        return None
    parts.append(source[last:])
    return tuple(p for p in parts if p != "")


def _render_simple(parts: Simple, context: Mapping[str, Any], shell: bool) -> str | None:
    """The rendered text, or None when a name is missing (Jinja then reports it)."""
    finalize = _shell_finalize if shell else _plain_finalize
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        found, value = lookup(part, context)
        if not found:
            return None
        out.append(finalize(value))
    return "".join(out)


def lookup(part: tuple[tuple[str, ...], bool], context: Mapping[str, Any]) -> tuple[bool, Any]:
    """The value of one ``{{ a.b.c }}`` (``| raw`` applied) as Jinja reads it; (False, None) when
    a name is missing."""
    from jinja2 import Undefined

    getattr_ = environment(False).getattr
    path, raw = part
    if path[0] not in context:
        return False, None
    value = context[path[0]]
    for attr in path[1:]:
        value = getattr_(value, attr)
        if isinstance(value, Undefined):
            return False, None
    return True, _raw_filter(value) if raw else value


@lru_cache(maxsize=8192)
def analyse(source: str, expression: bool = False) -> Analysis:
    """Parse ``source`` once and report what it depends on."""
    if not expression and not is_template(source):
        return STATIC
    parts = None if expression else simple_parts(source)
    if parts is not None:
        paths = [p[0] for p in parts if not isinstance(p, str)]
        return Analysis(
            frozenset(p[1] for p in paths if p[0] == "tasks" and len(p) > 1),
            any(p[0] == "secrets" for p in paths),
            any(p[1] for p in parts if not isinstance(p, str)),
            any(p[0] == "run" for p in paths),
        )
    from jinja2 import TemplateSyntaxError, nodes

    text = "{{ (" + source + ") }}" if expression else source
    try:
        tree = environment(False).parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"template syntax error: {exc.message}", exc.lineno) from None
    tasks: set[str] = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "tasks":
            tasks.add(node.attr)
    for item in tree.find_all(nodes.Getitem):
        named = isinstance(item.node, nodes.Name) and item.node.name == "tasks"
        if named and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            tasks.add(item.arg.value)
    names = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
    raw = any(_may_apply_raw(f, nodes) for f in tree.find_all(nodes.Filter))
    return Analysis(frozenset(tasks), "secrets" in names, raw, "run" in names)


_BY_NAME = frozenset({"map", "select", "reject"})  # filters that apply a filter named by an argument


def _may_apply_raw(node: Any, nodes: Any) -> bool:
    """``| raw`` itself, ``map('raw')``, or a ``map``/``select``/``reject`` whose filter name is not a literal."""
    if node.name == "raw":
        return True
    if node.name not in _BY_NAME or not node.args:
        return False
    name = node.args[0]
    return not isinstance(name, nodes.Const) or name.value == "raw"


def render(source: str, context: Mapping[str, Any], shell: bool = False) -> str:
    """Render a template string; failures become :class:`TemplateFailure`."""
    if not is_template(source):
        return source
    with reported(source, context):
        return _render(source, context, shell)


@contextmanager
def reported(source: str, context: Mapping[str, Any]) -> Iterator[None]:
    """Run a render of ``source`` within the time budget; its failures become :class:`TemplateFailure`."""
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError, TemplateError

    from nexusmon.compile.limits import time_budget

    try:
        with time_budget():
            yield
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"template syntax error: {exc.message}", exc.lineno) from None
    except UndefinedError as exc:
        raise TemplateFailure(hinted(undefined_message(exc, source), context), _template_line(exc)) from None
    except SecurityError as exc:
        raise TemplateFailure(f"template refused by the sandbox: {exc}", _template_line(exc)) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateFailure(f"template error: {exc}", _template_line(exc)) from None
    except (MemoryError, RecursionError):
        raise TemplateFailure("template needs more memory or nesting than nexusmon allows") from None


def _template_line(exc: BaseException) -> int | None:
    """The template line a render failed at: Jinja names its frames `<template>`."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render(source: str, context: Mapping[str, Any], shell: bool) -> str:
    if shell:
        source = in_context(source)
    parts = simple_parts(source)
    if parts is not None:
        done = _render_simple(parts, context, shell)
        if done is not None:
            return done
    rendered: str = _compiled(source, shell).render(context)
    return rendered


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate an ``if`` expression (no braces)."""
    from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import TemplateError

    from nexusmon.compile.limits import time_budget

    try:
        with time_budget():
            value = compile_expression(expression)(**context)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"expression syntax error: {exc.message}") from None
    except UndefinedError as exc:
        raise TemplateFailure(hinted(undefined_message(exc, expression), context)) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateFailure(f"expression error: {exc}") from None
    if isinstance(value, StrictUndefined):
        message = undefined_message(UndefinedError(str(value._undefined_message)), expression)
        raise TemplateFailure(hinted(message, context))
    return value


@lru_cache(maxsize=8192)
def _compiled(source: str, shell: bool) -> Any:
    """Jinja compiles a string template on every from_string call; plans repeat templates."""
    return environment(shell).from_string(source)


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> Any:
    return environment(False).compile_expression(expression, undefined_to_none=False)


def walk_strings(value: Any, fn: Callable[[str, tuple[Any, ...]], Any], at: tuple[Any, ...] = ()) -> Any:
    """Apply ``fn(text, path)`` to every string in a nested value; rebuild the value."""
    if isinstance(value, str):
        return fn(value, at)
    if isinstance(value, dict):
        return {k: walk_strings(v, fn, at + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [walk_strings(v, fn, at + (i,)) for i, v in enumerate(value)]
    return value
