"""Size and time limits of the template sandbox: no value past MAX_VALUE characters, no render past TIME_BUDGET.

Sizes are checked *before* a value is built. A value's size is :func:`weight`,
an upper estimate of its length as text that counts a shared part every time
it appears (``[l, l]`` weighs twice ``l``), so nested containers cannot
amplify. Time is checked by :func:`tick`, which the sandbox calls on every
loop iteration and macro call. Imported with Jinja, on first use.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace
from msgspec import Struct
from msgspec.structs import asdict

MAX_VALUE = 10_000_000  # characters (or items) one value may have; digits a `**` may produce
TIME_BUDGET = 2.0  # seconds one template may render for
MAX_SLICES = 100_000  # like Jinja's MAX_RANGE

_deadline: ContextVar[float] = ContextVar("nexusmon_template_deadline", default=float("inf"))
CONTAINERS = (Mapping, list, tuple, set, frozenset, Namespace, Struct)
_WIDTH = re.compile(r"%[^a-zA-Z%]*?(\d{8,})")  # a %-format width or precision of 8+ digits


@contextmanager
def time_budget() -> Iterator[None]:
    """Give the renders inside the block TIME_BUDGET seconds (checked by :func:`tick`)."""
    token = _deadline.set(time.monotonic() + TIME_BUDGET)
    try:
        yield
    finally:
        _deadline.reset(token)


def tick() -> None:
    """Called on every loop iteration and macro call of a template."""
    if time.monotonic() > _deadline.get():
        raise SecurityError(f"template ran longer than {TIME_BUDGET:g} s")


def too_big(what: str) -> SecurityError:
    return SecurityError(f"{what} would make a value larger than {MAX_VALUE} characters or items")


def weight(value: Any, limit: int = MAX_VALUE) -> int:
    """An upper estimate of ``len(str(value))``; stops counting once past ``limit``."""
    total, stack, visits = 0, [value], 0
    while stack and total <= limit:
        item = stack.pop()
        visits += 1
        if visits % 4096 == 0:
            tick()
        if isinstance(item, (str, bytes)):
            total += 4 * len(item) + 3 if isinstance(item, bytes) else len(item) + 2
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(item._Namespace__attrs)
        elif isinstance(item, Struct):
            stack.append(asdict(item))
        else:
            total += 24  # numbers, None, objects whose text templates cannot grow
    return total


def checked(value: Any, what: str) -> Any:
    """``value`` itself, refused when its text would be past MAX_VALUE."""
    if isinstance(value, CONTAINERS) and weight(value) > MAX_VALUE:
        raise too_big(what)
    return value


def drawn(items: Iterable[Any], what: str) -> list[Any]:
    """An iterator's items as a list, refused once their text would pass MAX_VALUE."""
    out, total = [], 0
    for item in items:
        total += weight(item) + 1
        if total > MAX_VALUE:
            raise too_big(what)
        out.append(item)
    return out


def refuse_huge_numbers(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_VALUE:
            raise SecurityError(f"{value} is larger than {MAX_VALUE}, the most a template may ask for")


def binop_size(operator: str, left: Any, right: Any) -> float:
    """The size ``left OPERATOR right`` could have (0 when it is not a concern)."""
    if operator == "%":
        return percent_size(left, right)
    if operator == "**":
        if not (isinstance(left, int) and isinstance(right, int)) or right <= 0 or abs(left) < 2:
            return 0
        return right * abs(left).bit_length() / 3.33  # ~decimal digits
    if operator == "+":
        sized = (str, bytes, list, tuple)
        return weight(left) + weight(right) if isinstance(left, sized) and isinstance(right, sized) else 0
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int) and times > 0:
            each = len(seq) if isinstance(seq, (str, bytes)) else weight(seq) - 2  # without brackets
            return each * times if times <= MAX_VALUE else float("inf")
    return 0


def percent_size(template: Any, values: Any) -> float:
    """``template % values`` (and the ``format`` filter): its widths and the values' text."""
    if not isinstance(template, str):
        return 0
    if _WIDTH.search(template):
        return float("inf")
    items = list(values.values()) if isinstance(values, Mapping) else (
        list(values) if isinstance(values, tuple) else [values])
    if "*" in template:
        refuse_huge_numbers(items, {})
    biggest = max((weight(v) for v in items), default=0)
    return len(template) + template.count("%") * biggest


def check_spec(spec: str) -> int:
    """A ``str.format`` spec's width/precision (the biggest number in it), refused past MAX_VALUE."""
    numbers = re.findall(r"\d+", spec)
    if any(len(n.lstrip("0")) > len(str(MAX_VALUE)) or int(n) > MAX_VALUE for n in numbers):
        raise SecurityError(f"a format width or precision over {MAX_VALUE} is refused")
    return max((int(n) for n in numbers), default=0)


def method_size(text: Any, name: str | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> float:
    """The size ``text.name(*args)`` could reach (0 when the method cannot grow text)."""
    if name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        return replace_size(text, args[0], args[1], count)
    if name == "expandtabs":
        size: int = args[0] if args else kwargs.get("tabsize", 8)
        tabs: int = text.count("\t") if isinstance(text, str) else text.count(b"\t")
        return len(text) + tabs * max(size, 0)
    if name == "join" and args:
        return len(text) * len(args[0]) + sum(weight(item) for item in args[0])
    if name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((weight(v) for v in args[0].values()), default=1)
        return len(text) * longest
    return 0


def replace_size(text: Any, old: Any, new: Any, count: Any) -> float:
    if not (isinstance(text, (str, bytes)) and isinstance(old, type(text)) and isinstance(new, type(text))):
        return 0
    found: int = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def filter_size(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> float:
    """The size a filter's result could reach (0 when the filter cannot grow text)."""
    value = str(args[0]) if args and name in _TEXT_FILTERS and not isinstance(args[0], str) else (
        args[0] if args else "")
    option = dict(zip(_FILTER_OPTIONS.get(name, ()), args[1:]), **kwargs)
    if name == "replace":
        return replace_size(value, option.get("old"), option.get("new"), option.get("count"))
    if name == "indent":
        width = option.get("width", 4)
        prefix: int = len(width) if isinstance(width, str) else width
        return len(value) + (value.count("\n") + 1) * prefix
    if name == "wordwrap":
        width, wrap = option.get("width", 79), option.get("wrapstring") or "\n"
        return float(len(value)) + (len(value) // max(int(width), 1) + int(value.count("\n")) + 1) * len(wrap)
    if name == "format":
        if isinstance(value, str) and _WIDTH.search(value):
            raise SecurityError(f"a format width over {MAX_VALUE} is refused")
        return percent_size(value, kwargs or tuple(args[1:]))
    if name == "join":
        return len(str(option.get("d", ""))) * len(value) + weight(value)
    if name == "sum" and not isinstance(option.get("start", 0), (int, float)):
        return weight(value) * max(len(value), 1)
    if name == "slice" and isinstance(option.get("slices"), int) and option["slices"] > MAX_SLICES:
        return float("inf")
    return 0


_TEXT_FILTERS = frozenset({"replace", "indent", "wordwrap"})  # filters that read their value as text
_FILTER_OPTIONS = {"replace": ("old", "new", "count"), "indent": ("width",), "wordwrap": ("width", "_", "wrapstring"),
                   "join": ("d",), "sum": ("attribute", "start"), "slice": ("slices",)}
SIZED_FILTERS = frozenset({"indent", "center", "format", "wordwrap", "truncate", "batch", "slice"})
