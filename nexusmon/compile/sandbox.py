"""The template sandbox: Jinja's immutable sandbox with the limits of :mod:`limits`.

Sizes are checked *before* a value is built: operators (``*``, ``**``, ``%``,
``+``), ``~`` concatenation, container literals, ``str.format``, the methods and
filters that grow text, and the text of the whole render. Loops and macros call
:func:`~nexusmon.compile.limits.tick`, which ends a render past its time budget.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace
from markupsafe import Markup
from msgspec import Struct
from msgspec.structs import asdict

from nexusmon.compile.limits import (
    CONTAINERS,
    MAX_VALUE,
    SIZED_FILTERS,
    binop_size,
    check_spec,
    checked,
    drawn,
    filter_size,
    method_size,
    refuse_huge_numbers,
    tick,
    too_big,
    weight,
)


def to_json(value: Any) -> str:
    """A container rendered into text: JSON, once its size is known to be bounded."""
    checked(value, "rendering this value")
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Namespace):
        return dict(value._Namespace__attrs)
    if isinstance(value, Struct):
        return asdict(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def text_of(value: Any) -> str:
    """What ``~`` makes of a value: containers as JSON, anything else as ``str``."""
    if isinstance(value, str):
        return value
    return to_json(value) if isinstance(value, CONTAINERS) else str(value)


def concat(parts: Iterable[Any]) -> str:
    """``~`` and the text of a render or a block: joined only when the total is bounded."""
    texts, total = [], 0
    for part in parts:
        text = text_of(part)
        total += len(text)
        if total > MAX_VALUE:
            raise too_big("'~'" if isinstance(parts, tuple) else "the rendered text")
        texts.append(text)
    return "".join(texts)


_bounded_concat = concat


class BoundedFormatter(SandboxedFormatter):
    """``str.format``/``format_map`` that refuse huge widths and results."""

    room = MAX_VALUE

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        self.room = MAX_VALUE - len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        return super().convert_field(checked(value, "str.format"), conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.room -= max(weight(value), check_spec(format_spec))
        if self.room < 0:
            raise too_big("str.format")
        return super().format_field(value, format_spec)


class BoundedEscapeFormatter(BoundedFormatter, SandboxedEscapeFormatter):
    pass


def wrap_format(env: Any, method: Any) -> Callable[..., str]:
    """A sandboxed ``str.format``/``format_map`` bound method, sized by BoundedFormatter."""
    text = method.__self__
    formatter: BoundedFormatter = (
        BoundedEscapeFormatter(env, escape=text.escape) if isinstance(text, Markup) else BoundedFormatter(env))

    def wrapper(*args: Any, **kwargs: Any) -> str:
        if method.__name__ == "format_map":
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            return str(formatter.vformat(text, (), args[0]))
        return str(formatter.vformat(text, args, kwargs))

    return wrapper


def _ticking(node: Any) -> Any:
    """A copy of a loop or macro node whose body first calls ``environment.nexusmon_tick()``."""
    call = nodes.Call(nodes.EnvironmentAttribute("nexusmon_tick"), [], [], None, None, lineno=node.lineno)
    ticking = copy.copy(node)
    ticking.body = [nodes.ExprStmt(call, lineno=node.lineno), *node.body]
    return ticking


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with ``~`` and container literals sized, loops and macros timed."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.nexusmon_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        super().visit_For(_ticking(node), frame)

    def macro_body(self, node: Any, frame: Frame) -> Any:
        return super().macro_body(_ticking(node), frame)

    # A set block's, a macro's or a recursive loop's text was quoted where values were
    # interpolated into it: it is marked rendered, so that using it does not quote it again.
    # Jinja marks it the same way (as Markup) for HTML autoescaping.

    def visit_AssignBlock(self, node: nodes.AssignBlock, frame: Frame) -> None:
        if node.filter is not None:  # a filter made new text: quoted where it is used
            super().visit_AssignBlock(node, frame)
            return
        self.push_assign_tracking()  # as CodeGenerator.visit_AssignBlock, but marking the text
        block_frame = frame.inner()
        block_frame.require_output_check = False
        block_frame.symbols.analyze_node(node)
        self.enter_frame(block_frame)
        self.buffer(block_frame)
        self.blockvisit(node.body, block_frame)
        self.newline(node)
        self.visit(node.target, frame)
        self.write(f" = environment.nexusmon_rendered(context.eval_ctx, concat({block_frame.buffer}))")
        self.pop_assign_tracking(frame)
        self.leave_frame(block_frame)

    def return_buffer_contents(self, frame: Frame, force_unescaped: bool = False) -> None:
        self.writeline(f"return environment.nexusmon_rendered(context.eval_ctx, concat({frame.buffer}))")

    def visit_ScopedEvalContextModifier(self, node: nodes.ScopedEvalContextModifier, frame: Frame) -> None:
        self._refuse_autoescape(node)
        super().visit_ScopedEvalContextModifier(node, frame)

    def visit_EvalContextModifier(self, node: nodes.EvalContextModifier, frame: Frame) -> None:
        self._refuse_autoescape(node)
        super().visit_EvalContextModifier(node, frame)

    def visit_FilterBlock(self, node: nodes.FilterBlock, frame: Frame) -> None:
        """A filter over a block of a script rewrites its quoted values (``replace("'", "")``
        strips the quotes); a filter on a value, or on a ``{% set %}`` block, is quoted after."""
        if getattr(self.environment, "nexusmon_shell", False):
            self.fail("{% filter %} cannot be used in a run script (it would rewrite quoted values); "
                      "filter the value instead ({{ name | upper }}), or a {% set %} block", node.lineno)
        super().visit_FilterBlock(node, frame)

    def _refuse_autoescape(self, node: nodes.EvalContextModifier) -> None:
        """HTML escaping of a script would turn its shell quotes into ``&#39;``."""
        if getattr(self.environment, "nexusmon_shell", False) and any(
                option.key == "autoescape" for option in node.options):
            self.fail("{% autoescape %} cannot be used in a run script (it would undo shell quoting)",
                      node.lineno)

    def _sized(self, visit: Callable[[Any, Frame], None], node: Any, frame: Frame) -> None:
        if getattr(node, "ctx", "load") != "load":
            visit(node, frame)
            return
        self.write("environment.nexusmon_sized(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._sized(super().visit_List, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        self._sized(super().visit_Tuple, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._sized(super().visit_Dict, node, frame)


def make_environment(finalize: Callable[[Any], str], rendered: Callable[[str], str], shell: bool) -> Any:
    """The immutable sandbox with every limit above, rendering values through ``finalize``;
    ``rendered`` marks the text of set blocks and macros; ``shell`` refuses ``{% autoescape %}``."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset(["*", "**", "%", "+"])
        # Both from the module's function: in the class body `concat` would name the
        # staticmethod just made, which Python 3.9 cannot call.
        concat = nexusmon_concat = staticmethod(_bounded_concat)
        nexusmon_tick = staticmethod(tick)
        nexusmon_shell = shell

        @staticmethod
        def nexusmon_rendered(eval_ctx: Any, text: str) -> str:
            return Markup(text) if eval_ctx.autoescape else rendered(text)

        @staticmethod
        def nexusmon_sized(value: Any) -> Any:
            return checked(value, "this literal")

        def getattr(self, obj: Any, attribute: str) -> Any:
            # `inputs.items` is the input named items, not dict.items: a name users declare
            # wins over a method of the mapping that holds it (methods stay callable otherwise).
            if isinstance(obj, dict):
                try:
                    return obj[attribute]
                except KeyError:
                    pass
            return super().getattr(obj, attribute)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if binop_size(operator, left, right) > MAX_VALUE:
                raise too_big(f"'{operator}'")
            return super().call_binop(context, operator, left, right)

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            args = check_call(obj, args, kwargs)
            return super().call(context, obj, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            if super().wrap_str_format(value) is None:
                return None
            return wrap_format(self, value)

    env = Sandbox(
        undefined=StrictUndefined, finalize=finalize, autoescape=False, keep_trailing_newline=True,
        cache_size=4096,
    )
    del env.globals["lipsum"]  # lipsum(n=10**8) builds text without bound, and no mission needs it
    for name, fn in list(env.filters.items()):
        env.filters[name] = _guarded(name, fn)
    return env


_PADDING = frozenset({"ljust", "rjust", "center", "zfill"})  # str methods sized by a number


def check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a method or global call whose result would pass MAX_VALUE; its (settled) arguments."""
    name = getattr(obj, "__name__", None)
    owner = getattr(obj, "__self__", None)
    if name in _PADDING:
        refuse_huge_numbers(args, kwargs)
    elif obj is dict or obj is Namespace:
        checked([*args, *kwargs.values()], f"{name}()")
    elif isinstance(owner, (str, bytes)):
        if name == "join" and args:
            args = (drawn(args[0], "str.join"), *args[1:])
        size = method_size(owner, name, args, kwargs)
        if size > MAX_VALUE:
            raise too_big(f"str.{name}")
    return args


def _guarded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose arguments are settled (iterators drawn, containers sized) and whose result is bounded."""
    passed = 1 if hasattr(fn, "jinja_pass_arg") else 0

    def filter_(*args: Any, **kwargs: Any) -> Any:
        head = args[:passed]
        rest = tuple(drawn(a, f"'{name}'") if isinstance(a, Iterator) else checked(a, f"'{name}'")
                     for a in args[passed:])
        kwargs = {k: checked(v, f"'{name}'") for k, v in kwargs.items()}
        if name in SIZED_FILTERS:
            refuse_huge_numbers(rest[1:], kwargs)
        if filter_size(name, rest, kwargs) > MAX_VALUE:
            raise too_big(f"'{name}'")
        return fn(*head, *rest, **kwargs)

    if passed:
        filter_.jinja_pass_arg = fn.jinja_pass_arg  # type: ignore[attr-defined]
    return filter_
