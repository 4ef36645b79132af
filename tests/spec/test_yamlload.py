"""The YAML loader: plain values only, located errors, positions of every key and value."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nexusmon.errors import InvalidFiles
from nexusmon.spec.yamlload import MAX_FILE_BYTES, parse_yaml, read_yaml


def errors_of(text: str, path: str = "f.yaml") -> list[str]:
    with pytest.raises(InvalidFiles) as info:
        parse_yaml(text, path)
    return [str(d) for d in info.value.diagnostics]


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# -- refused constructs ---------------------------------------------------------


def test_duplicate_key_names_the_first_definition() -> None:
    assert errors_of("a: 1\nb: 2\na: 3\n") == ["f.yaml:3:1: error: duplicate key 'a' (first defined at line 1)"]


def test_duplicate_key_in_flow_mapping() -> None:
    assert errors_of("t: {a: 1, a: 2}\n") == ["f.yaml:1:11: error: duplicate key 'a' (first defined at line 1)"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\n1: 2\n", "f.yaml:2:1: error: keys must be strings (quote the key)"),
        ("on: push\n", "f.yaml:1:1: error: keys must be strings (quote the key)"),
        ("1.5: x\n", "f.yaml:1:1: error: keys must be strings (quote the key)"),
        ("~: 1\n", "f.yaml:1:1: error: keys must be strings"),
        ("? [a, b]\n: 1\n", "f.yaml:1:3: error: keys must be strings"),
    ],
    ids=["integer", "yaml11-boolean", "float", "null", "sequence"],
)
def test_non_string_keys_are_refused(text: str, line: str) -> None:
    assert errors_of(text) == [line]


def test_quoted_key_is_a_string() -> None:
    assert parse_yaml("'on': push\n'1': x\n", "f.yaml").data == {"on": "push", "1": "x"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: !!python/object:os.system {}\n",
         "f.yaml:1:4: error: unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'"),
        ("a: !!python/name:os.system\n",
         ("f.yaml:1:4: error: unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system'"
         " (only plain YAML values are allowed)")),
        ("a: !custom x\n", "f.yaml:1:4: error: unsupported YAML tag '!custom' (only plain YAML values are allowed)"),
        ("a: !!binary aGVsbG8=\n",
         "f.yaml:1:4: error: unsupported YAML tag 'tag:yaml.org,2002:binary' (only plain YAML values are allowed)"),
        ("a: !!set {x}\n", "f.yaml:1:4: error: unsupported YAML tag 'tag:yaml.org,2002:set'"),
        ("a: !!omap [x: 1]\n", "f.yaml:1:4: error: unsupported YAML tag 'tag:yaml.org,2002:omap'"),
    ],
    ids=["python-object", "python-name", "local", "binary", "set", "omap"],
)
def test_custom_tags_are_refused(text: str, line: str) -> None:
    assert errors_of(text) == [line]


def test_python_apply_tag_executes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = "a: !!python/object/apply:os.system ['touch pwned']\n"
    assert errors_of(text) == [
        "f.yaml:1:4: error: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"
    ]
    assert not (tmp_path / "pwned").exists()


def test_merge_keys_are_refused_with_a_hint() -> None:
    text = "base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n"
    assert errors_of(text) == ["f.yaml:3:3: error: merge keys ('<<') are not supported (repeat the keys or use a rune)"]


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.monotonic()
    found = errors_of(billion_laughs(), "bomb.yaml")
    assert time.monotonic() - started < 5
    assert len(found) == 1
    assert re.fullmatch(
        r"bomb\.yaml:\d+:\d+: error: document expands to more than 200000 nodes "
        r"\(aliases that multiply content are refused\)",
        found[0],
    ), found


def test_recursive_alias_is_refused() -> None:
    assert errors_of("a: &a [*a]\n") == [
        "f.yaml:1:4: error: document is nested too deeply (more than 200 levels)"
    ]


@pytest.mark.parametrize("depth", [201, 5_000])
def test_nesting_past_the_limit_is_located_at_the_first_level_too_deep(depth: int) -> None:
    text = "a: " + "[" * depth + "]" * depth + "\n"
    assert errors_of(text) == ["f.yaml:1:203: error: document is nested too deeply (more than 200 levels)"]


def test_nesting_at_the_limit_is_accepted() -> None:
    assert parse_yaml("[" * 200 + "]" * 200 + "\n", "f.yaml").data is not None


def test_small_aliases_are_plain_copies() -> None:
    doc = parse_yaml("a: &x {k: 1}\nb: *x\n", "f.yaml")
    assert doc.data == {"a": {"k": 1}, "b": {"k": 1}}


def test_oversized_text_is_refused() -> None:
    text = "a: " + "x" * MAX_FILE_BYTES + "\n"
    assert errors_of(text) == [f"f.yaml:1:1: error: file is larger than {MAX_FILE_BYTES} bytes"]


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: [" + b"1, " * MAX_FILE_BYTES + b"]\n")
    started = time.monotonic()
    with pytest.raises(InvalidFiles) as info:
        read_yaml(path, "missions/big.yaml")
    assert time.monotonic() - started < 2
    assert [str(d) for d in info.value.diagnostics] == [
        f"missions/big.yaml:1:1: error: file is larger than {MAX_FILE_BYTES} bytes"
    ]


def test_invalid_utf8_names_the_line_and_column_in_characters(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"mission: a\nobjective: \xc3\xa9 \xe9\n")  # a UTF-8 'é', then a Latin-1 one
    with pytest.raises(InvalidFiles) as info:
        read_yaml(path, "missions/m.yaml")
    assert [str(d) for d in info.value.diagnostics] == ["missions/m.yaml:2:14: error: file is not valid UTF-8"]


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"mission: a\nobjective: caf\xe9\n")
    with pytest.raises(InvalidFiles) as info:
        read_yaml(path, "missions/m.yaml")
    assert [str(d) for d in info.value.diagnostics] == ["missions/m.yaml:2:15: error: file is not valid UTF-8"]


def test_unreadable_path_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidFiles) as info:
        read_yaml(tmp_path / "missing.yaml", "missions/missing.yaml")
    assert [str(d) for d in info.value.diagnostics] == [
        "missions/missing.yaml:1:1: error: cannot read file: No such file or directory"
    ]


def test_control_character_is_refused() -> None:
    found = errors_of("mission: a\nrun: \"echo \x07\"\n")
    assert len(found) == 1 and found[0].startswith("f.yaml:") and "control characters are not allowed" in found[0]



def test_control_character_is_located_at_its_line_and_column() -> None:
    found = errors_of("mission: a\nobjective: b\nrun: \"echo \x07\"\n")
    assert len(found) == 1
    assert found[0].startswith("f.yaml:3:12: error: "), found
    assert "<unicode string>" not in found[0] and "position" not in found[0], found


def test_escaped_control_character_is_fine() -> None:
    assert parse_yaml('run: "echo \\x07"\n', "f.yaml").data == {"run": "echo \x07"}


def test_syntax_error_is_located() -> None:
    assert errors_of("a: [1, 2\n") == [
        "f.yaml:2:1: error: did not find expected ',' or ']' while parsing a flow sequence"
    ]



def test_second_document_error_reads_naturally() -> None:
    found = errors_of("a: 1\n---\nb: 2\n")
    assert len(found) == 1 and found[0].startswith("f.yaml:2:1: error: "), found
    message = found[0].split(": error: ", 1)[1]
    assert not message.startswith("but "), found


# -- accepted shapes --------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "\n\n"])
def test_empty_documents_have_no_data(text: str) -> None:
    assert parse_yaml(text, "f.yaml").data is None


def test_a_file_holding_a_list_loads_as_a_list() -> None:
    assert parse_yaml("- a\n- b\n", "f.yaml").data == ["a", "b"]


def test_dates_and_timestamps_stay_strings() -> None:
    doc = parse_yaml("d: 2024-01-02\nt: 2001-12-14t21:59:43.10-05:00\n", "f.yaml")
    assert doc.data == {"d": "2024-01-02", "t": "2001-12-14t21:59:43.10-05:00"}


def test_plain_scalars_keep_their_yaml_types() -> None:
    doc = parse_yaml("i: 3\nf: 1.5\nb: true\nn: null\ns: '1.0'\n", "f.yaml")
    assert doc.data == {"i": 3, "f": 1.5, "b": True, "n": None, "s": "1.0"}


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes("\ufeffa: é\n".encode("utf-8"))
    assert read_yaml(path, "m.yaml").data == {"a": "é"}


# -- positions ----------------------------------------------------------------------

POSITIONS = """\
a:
  b: [1, {c: 2}]
  'q': |
    text
list:
  - x
  -   y
"""


def test_positions_of_keys_and_values_in_block_and_flow_style() -> None:
    doc = parse_yaml(POSITIONS, "f.yaml")
    assert str(doc.locate_key(("a", "b"))) == "f.yaml:2:3"
    assert str(doc.locate(("a", "b"))) == "f.yaml:2:6"
    assert str(doc.locate(("a", "b", 0))) == "f.yaml:2:7"
    assert str(doc.locate_key(("a", "b", 1, "c"))) == "f.yaml:2:11"
    assert str(doc.locate(("a", "b", 1, "c"))) == "f.yaml:2:14"
    assert str(doc.locate_key(("a", "q"))) == "f.yaml:3:3"
    assert str(doc.locate(("a", "q"))) == "f.yaml:3:8"
    assert str(doc.locate(("list", 1))) == "f.yaml:7:7"


def test_list_items_have_no_key_so_their_value_is_used() -> None:
    doc = parse_yaml(POSITIONS, "f.yaml")
    assert str(doc.locate_key(("list", 0))) == "f.yaml:6:5"


def test_missing_path_falls_back_to_nearest_parent() -> None:
    doc = parse_yaml(POSITIONS, "f.yaml")
    assert str(doc.locate(("a", "b", 1, "nope", "deeper"))) == "f.yaml:2:10"
    assert str(doc.locate(("absent",))) == "f.yaml:1:1"


def test_digest_is_of_the_text() -> None:
    one = parse_yaml("a: 1\n", "f.yaml")
    same = parse_yaml("a: 1\n", "g.yaml")
    other = parse_yaml("a: 1 # note\n", "f.yaml")
    assert one.digest == same.digest != other.digest
    assert one.digest.startswith("sha256:")


# -- through the CLI ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (b"", "missions/m.yaml:1:1: error: mission file is empty"),
        (b"# nothing yet\n", "missions/m.yaml:1:1: error: mission file is empty"),
        (b"- a\n- b\n", "missions/m.yaml:1:1: error: expected a mapping, got a list in mission"),
        (b"mission: a\nobjective: caf\xe9\ntasks: {}\n", "missions/m.yaml:2:15: error: file is not valid UTF-8"),
        (b"mission: a\nmission: b\n", "missions/m.yaml:2:1: error: duplicate key 'mission' (first defined at line 1)"),
    ],
    ids=["empty", "comment-only", "list", "latin-1", "duplicate"],
)
def test_validate_reports_unloadable_mission_files(make_workspace, validate, tmp_path, raw, line) -> None:
    root = make_workspace(tmp_path, {})
    (root / "missions" / "m.yaml").write_bytes(raw)
    assert validate(root) == [line]


@pytest.mark.parametrize("kind,folder", [("rune", "runes"), ("policy", "policies")])
def test_empty_rune_and_policy_files_are_named(make_workspace, validate, tmp_path, kind, folder) -> None:
    root = make_workspace(tmp_path, {f"{folder}/x.yaml": "# empty\n"})
    assert validate(root) == [f"{folder}/x.yaml:1:1: error: {kind} file is empty"]


def test_date_objective_is_accepted_as_text(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/d.yaml": """
        mission: d
        objective: 2024-01-02
        tasks:
          t: {worker: noop}
    """})
    code, _out, err = cli(["validate"], root)
    assert (code, err) == (0, "")



@pytest.mark.parametrize(
    "deep", ["- " * 100_000 + "x\n", "[" * 100_000 + "]" * 100_000 + "\n"], ids=["block", "flow"],
)
def test_block_and_flow_nesting_past_what_libyaml_survives_is_refused(
    make_workspace, nexusmon_process, tmp_path, deep: str,
) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": deep})
    code, out, err = nexusmon_process(["validate"], cwd=root)
    assert (code, out) == (1, ""), f"exit status {code}"
    assert err.splitlines()[0].startswith("missions/m.yaml:1:")
    assert err.splitlines()[0].endswith(": error: document is nested too deeply (more than 200 levels)")


def test_deeply_nested_file_is_refused_without_crashing(make_workspace, nexusmon_process, tmp_path) -> None:
    depth = 40_000
    root = make_workspace(tmp_path, {"missions/m.yaml": "a: " + "[" * depth + "]" * depth + "\n"})
    code, out, err = nexusmon_process(["validate"], cwd=root)
    assert (code, out) == (1, ""), f"exit status {code}"
    assert err.splitlines()[0] == "missions/m.yaml:1:203: error: document is nested too deeply (more than 200 levels)"
