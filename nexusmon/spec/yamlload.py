"""Safe YAML loading that keeps positions and refuses what YAML should not do here.

PyYAML composes the node tree (C parser when available); we then build plain
values ourselves so that duplicate keys, non-string keys, custom tags and alias
bombs become located errors instead of surprises.
"""

from __future__ import annotations

from typing import Any

import yaml

from nexusmon.errors import Diagnostic, InvalidFiles, Location
from nexusmon.spec.document import MAX_FILE_BYTES, Document, JsonPath, Mark, read_text

MAX_NODES = 200_000
MAX_DEPTH = 200  # deeper documents are refused (the builder checks every node)
# libyaml's composer recurses in C and crashes somewhere past 20,000 levels. Each level
# takes at least one of these characters, so only a file with this many of them gets its
# nesting measured on the (iterative) event stream before it is composed.
COMPOSER_GUARD_MARKS = 10_000
_NESTING_CHARS = "[{-:?"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}


def _mark(mark: Any) -> Mark:
    return (mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, path: str, loader: Any) -> None:
        self.path = path
        self.loader = loader
        self.values: dict[JsonPath, Mark] = {}
        self.keys: dict[JsonPath, Mark] = {}
        self.count = 0

    def fail(self, node: yaml.Node, message: str, hint: str | None = None) -> InvalidFiles:
        line, col = _mark(node.start_mark)
        return InvalidFiles([Diagnostic(Location(self.path, line, col), message, hint)])

    def build(self, node: yaml.Node, path: JsonPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, f"document expands to more than {MAX_NODES} nodes",
                            "aliases that multiply content are refused")
        self.values[path] = _mark(node.start_mark)
        if len(path) >= MAX_DEPTH:  # the root is level 1
            raise self.fail(node, "document is nested too deeply", f"more than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                raise self.fail(node, f"unsupported YAML tag '{node.tag}'")
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            raise self.fail(node, f"unsupported YAML tag '{node.tag}'")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                raise self.fail(key_node, "merge keys ('<<') are not supported",
                                "repeat the keys or use a rune")
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise self.fail(key_node, "keys must be strings",
                                "quote the key" if key is not None else None)
            if key in result:
                first = self.keys[path + (key,)]
                raise self.fail(key_node, f"duplicate key '{key}'",
                                f"first defined at line {first[0]}")
            self.keys[path + (key,)] = _mark(key_node.start_mark)
            result[key] = self.build(value_node, path + (key,))
        return result

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(node, f"unsupported YAML tag '{node.tag}'",
                            "only plain YAML values are allowed")
        if node.tag == _TAG + "timestamp":
            return str(node.value)  # dates stay text: JSON has no date type
        return self.loader.construct_object(node, deep=True)


def parse_yaml(text: str, path: str) -> Document:
    """Parse one YAML document into a :class:`Document`; raise located errors."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise InvalidFiles([Diagnostic(Location(path), f"file is larger than {MAX_FILE_BYTES} bytes")])
    if sum(text.count(c) for c in _NESTING_CHARS) > COMPOSER_GUARD_MARKS:
        _check_depth(text, path)
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.reader.ReaderError as exc:
            raise InvalidFiles([_reader_diagnostic(exc, text, path)]) from None
        except yaml.MarkedYAMLError as exc:
            raise InvalidFiles([_yaml_diagnostic(exc, path)]) from None
        except yaml.YAMLError as exc:
            raise InvalidFiles([Diagnostic(Location(path), _one_line(str(exc)))]) from None
        except (ValueError, UnicodeError) as exc:  # bad encodings
            raise InvalidFiles([Diagnostic(Location(path), f"cannot read YAML: {_one_line(str(exc))}")]) from None
        if node is None:
            return Document(path, None, text)
        builder = _Builder(path, loader)
        try:
            data = builder.build(node, ())
        except yaml.YAMLError as exc:
            line, col = _mark(node.start_mark)
            raise InvalidFiles([Diagnostic(Location(path, line, col), _one_line(str(exc)))]) from None
        except RecursionError:
            raise InvalidFiles([Diagnostic(Location(path), "document is nested too deeply")]) from None
        return Document(path, data, text, builder.values, builder.keys)
    finally:
        loader.dispose()


def _yaml_diagnostic(exc: yaml.MarkedYAMLError, path: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = _mark(mark) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    context = exc.context if exc.context and exc.context_mark is not None else ""
    if not context:
        message = problem
    elif context.startswith("while "):
        message = f"{problem} {context}"  # "did not find ',' while parsing a flow mapping"
    else:
        message = f"{context}, {problem}"  # "expected a single document, but found another"
    return Diagnostic(Location(path, line, col), _one_line(message))


def _reader_diagnostic(exc: yaml.reader.ReaderError, text: str, path: str) -> Diagnostic:
    """A character YAML refuses (control characters), at its own line and column."""
    before = text[: exc.position]
    line = before.count("\n") + 1
    col = exc.position - (before.rfind("\n") + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return Diagnostic(Location(path, line, col), f"unacceptable character #x{ord(char):04x}: {exc.reason}",
                      "write it as an escape such as \\x07 inside double quotes")


def _check_depth(text: str, path: str) -> None:
    """Refuse nesting past MAX_DEPTH, located where it starts."""
    mark = too_deep(text)
    if mark is not None:
        line, col = _mark(mark)
        raise InvalidFiles([Diagnostic(Location(path, line, col), "document is nested too deeply",
                                       f"more than {MAX_DEPTH} levels")])


def too_deep(text: str) -> Any:
    """Where ``text`` first nests past MAX_DEPTH (a YAML mark), or None. The event stream is
    walked without recursion (the composer would hit Python's recursion limit first); a
    syntax error is left for the composer to report with its location."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_yaml(file: Any, shown_as: str) -> Document:
    """Read ``file`` (a Path) and parse it; unreadable files are located errors."""
    return parse_yaml(read_text(file, shown_as), shown_as)
