"""Where a `run` script interpolates values, and how each value stays one literal piece there.

Every ``{{ value }}`` in a script is shell-quoted (``'...'``), which makes it one literal
word where a command's words are written. Inside ``"..."``, ``'...'``, ``$'...'`` or an
unquoted here-document body (``<<EOF``) those quotes would not protect it (a value of
``$(touch pwned)`` would run), so there the value is escaped for that place instead
(:func:`in_context`): ``echo "v={{ x }}"`` prints ``v=`` and the value, as written. In
backticks and ``#`` comments no escaping is reliable: :func:`refused_spots` finds those
places, which `validate` refuses. ``{{ value | raw }}`` is the author's explicit opt-out
(policies see it) and is left alone everywhere. ``{% %}`` tags and ``{# #}`` comments are
read as if they were not there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_EXPRESSION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_RAW = re.compile(r"\|\s*raw\s*-?\}\}$")
_HEREDOC = re.compile(r"<<(-?)[ \t]*((?:'[^'\n]*'|\"[^\"\n]*\"|\\.|[^\s;&|<>()'\"\\])+)")
_WORD_BREAK = " \t\n;&|()<>"

#: Places where no escaping of a value is reliable -> how the error says it.
REFUSED = {
    "bq": "inside backticks",
    "comment": "inside a # comment",
}
#: Places where a value is escaped for its surroundings -> the filter that does it.
FILTERS = {
    "dq": "nexusmon_in_dq",
    "sq": "nexusmon_in_sq",
    "ansi": "nexusmon_in_ansi",
    "heredoc": "nexusmon_in_heredoc",
}
_BACKSLASHED = {"dq": frozenset('\\$`"'), "heredoc": frozenset("\\$`")}


def escape(place: str, text: str) -> str:
    """``text`` as one literal piece of a ``place`` (a key of :data:`FILTERS`)."""
    if place == "sq":
        return text.replace("'", "'\\''")
    if place == "ansi":
        return text.replace("\\", "\\\\").replace("'", "\\'")
    special = _BACKSLASHED[place]
    return "".join("\\" + c if c in special else c for c in text)


@lru_cache(maxsize=8192)
def refused_spots(source: str) -> tuple[tuple[str, int, str], ...]:
    """``(expression, line, place)`` for each value in a place of :data:`REFUSED`;
    ``line`` counts from 1 in ``source`` (a matrix's tasks share their script's source)."""
    return tuple((" ".join(tag.split()), line, place) for tag, line, place in _placed(source)
                 if place in REFUSED)


@lru_cache(maxsize=8192)
def in_context(source: str) -> str:
    """``source`` with each value inside quotes or a here-document passed through the filter
    that escapes it for that place (``source`` itself when there is no such value)."""
    out = []
    for literal, tag, place, _ in _tags(source):
        out.append(literal)
        name = FILTERS.get(place or "")
        match = _EXPRESSION.fullmatch(tag) if name and not _RAW.search(tag) else None
        if match is not None:
            left, inner, right = match.groups()
            tag = "{{" + f"{left} ({inner}) | {name} {right}" + "}}"
        out.append(tag)
    text = "".join(out)
    return source if text == source else text


def _placed(source: str) -> Iterator[tuple[str, int, str]]:
    """(``{{ }}`` tag, its line, its place) for each value that is not where words are written."""
    for _, tag, place, start in _tags(source):
        if place is not None and not _RAW.search(tag):
            yield tag, source.count("\n", 0, start) + 1, place


def _tags(source: str) -> Iterator[tuple[str, str, str | None, int]]:
    """(literal text, the tag after it, where a ``{{ }}`` tag's value sits: None for where
    words are written and for other tags, the tag's offset)."""
    lexer = _Lexer()
    last = 0
    for match in _TAG.finditer(source):
        literal, tag = source[last:match.start()], match.group(0)
        lexer.feed(literal)
        yield literal, tag, lexer.value_place() if tag.startswith("{{") else None, match.start()
        last = match.end()
    yield source[last:], "", None, len(source)


class _Lexer:
    """Just enough of bash's lexing to know the context of each position: quotes, command
    substitutions, comments and here-documents."""

    def __init__(self) -> None:
        self.stack: list[str] = ["cmd"]  # cmd | dq | sq | ansi | bq | comment
        self.parens: list[int] = [0]  # open parentheses per `cmd` frame
        self.escaped = False
        self.prev = "\n"
        self.pending: list[tuple[str, bool, bool]] = []  # here-documents: (delimiter, strip tabs, quoted)
        self.body: tuple[str, bool, bool] | None = None  # the here-document being read
        self.line = ""
        self.marked = False  # a value sits on the current here-document line

    def value_place(self) -> str | None:
        self.prev = "x"  # a value is a word
        if self.body is not None:
            self.marked = True
            return None if self.body[2] else "heredoc"
        top = self.stack[-1]
        return None if top == "cmd" else top

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def _step(self, text: str, i: int) -> int:
        c = text[i]
        if self.body is not None:
            self._body_char(c)
            return i + 1
        if self.escaped:
            self.escaped = False
            self.prev = "x"
            return i + 1
        top = self.stack[-1]
        if top == "cmd":
            return self._cmd_char(text, i)
        if top == "comment":
            if c == "\n":
                self.stack.pop()
                self._newline()
        elif top == "sq":
            if c == "'":
                self.stack.pop()
        elif c == "\\":
            self.escaped = True
        elif top == "ansi" and c == "'" or top == "dq" and c == '"' or top == "bq" and c == "`":
            self.stack.pop()
        elif top != "ansi" and text.startswith("$(", i):
            self._push_cmd()
            i += 1
        elif top == "dq" and c == "`":
            self.stack.append("bq")
        self.prev = c
        return i + 1

    def _cmd_char(self, text: str, i: int) -> int:
        c = text[i]
        if c == "\\":
            self.escaped = True
        elif c == "'":
            self.stack.append("sq")
        elif c == '"':
            self.stack.append("dq")
        elif c == "`":
            self.stack.append("bq")
        elif c == "#" and self.prev in _WORD_BREAK:
            self.stack.append("comment")
        elif text.startswith("$'", i):
            self.stack.append("ansi")
            i += 1
        elif text.startswith("$(", i):
            self._push_cmd()
            i += 1
        elif c == "(":
            self.parens[-1] += 1
        elif c == ")":
            self._close_paren()
        elif text.startswith("<<", i) and not text.startswith("<<<", i):
            match = _HEREDOC.match(text, i)
            if match:
                word = match.group(2)
                delimiter = re.sub(r"\\(.)|['\"]", lambda m: m.group(1) or "", word)
                self.pending.append((delimiter, bool(match.group(1)), any(q in word for q in "'\"\\")))
                self.prev = "x"
                return match.end()
        elif c == "\n":
            self._newline()
        self.prev = c
        return i + 1

    def _push_cmd(self) -> None:
        self.stack.append("cmd")
        self.parens.append(0)

    def _close_paren(self) -> None:
        if self.parens[-1] > 0:
            self.parens[-1] -= 1
        elif len(self.stack) > 1:  # the `)` of a `$(`: back to where it was opened
            self.stack.pop()
            self.parens.pop()

    def _newline(self) -> None:
        if self.pending:
            self.body = self.pending.pop(0)
            self.line, self.marked = "", False

    def _body_char(self, c: str) -> None:
        if c != "\n":
            self.line += c
            return
        assert self.body is not None
        delimiter, strip_tabs, _ = self.body
        line = self.line.lstrip("\t") if strip_tabs else self.line
        self.line = ""
        if line == delimiter and not self.marked:
            self.body = None
            self._newline()  # the next here-document of the same command line, if any
        self.marked = False
        self.prev = "\n"
