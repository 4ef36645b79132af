"""Input declarations, mapping keys and inputs files: each problem located where it is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_cli
from conftest import plan_document, validate_errors, write_workspace

BAD_DEFAULTS = """
    mission: m
    objective: inputs whose declarations contradict themselves
    inputs:
      n: {type: integer, default: abc}
      env_name: {type: string, enum: [staging, prod], default: dev}
      dry: {type: boolean, default: "false"}
      level: {type: integer, enum: [1, "2", 3]}
      label: {type: string, default: true}
      ratio: {type: number, enum: [.nan, 1.5], default: [1, {a: null}]}
    tasks:
      t: {run: echo}
"""

BAD_DEFAULT_ERRORS = [
    "missions/m.yaml:4:31: error: default of input 'n' expects integer, got 'abc'",
    "missions/m.yaml:5:60: error: default of input 'env_name' must be one of staging, prod, got 'dev'",
    "missions/m.yaml:6:33: error: default of input 'dry' expects boolean, got 'false'",
    "missions/m.yaml:7:36: error: enum value of input 'level' expects integer, got '2'",
    "missions/m.yaml:8:34: error: default of input 'label' expects string, got true",
    "missions/m.yaml:9:32: error: enum value of input 'ratio' expects finite numbers, got .nan",
    "missions/m.yaml:9:53: error: default of input 'ratio' expects number, got [1, {a: null}]",
]


def test_validate_locates_defaults_and_enum_values_their_input_refuses(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": BAD_DEFAULTS})
    assert validate_errors(root) == BAD_DEFAULT_ERRORS


@pytest.mark.parametrize("command", ["plan", "run"])
def test_plan_and_run_report_them_at_the_same_place(tmp_path: Path, command: str) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": BAD_DEFAULTS})
    result = run_cli([command, "m", "-i", "n=1", "-i", "env_name=prod"], root)
    assert (result.exit_code, result.stdout, result.stderr.splitlines()) == (2, "", BAD_DEFAULT_ERRORS)


def test_a_rune_input_is_checked_in_the_rune_file_and_its_caller_is_not_blamed(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {
        "runes/r.yaml": """
            rune: r
            version: 1
            inputs:
              level: {type: integer, enum: [1, 2], default: 3}
            tasks:
              only: {run: "echo {{ inputs.level }}"}
        """,
        "missions/m.yaml": """
            mission: m
            objective: calls a rune whose input declaration is wrong
            tasks:
              t: {uses: r@1}
        """,
    })
    expected = ["runes/r.yaml:4:49: error: default of input 'level' must be one of 1, 2, got 3"]
    assert validate_errors(root) == expected
    result = run_cli(["plan", "m"], root)
    assert (result.exit_code, result.stderr.splitlines()) == (2, expected)


def test_defaults_and_enum_values_that_fit_are_the_plans_inputs(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: every input type with a fitting default
        inputs:
          count: {type: integer, default: 3}
          ratio: {type: number, default: 2}
          mode: {type: integer, enum: [1, 2], default: 2}
          dry: {type: boolean, default: false}
          tags: {type: array, default: [a, 1]}
          day: {type: string, default: 2024-01-01}
          env_name: {type: string, enum: [staging, prod]}
        tasks:
          t: {run: echo}
    """})
    assert validate_errors(root) == []
    doc = plan_document(root, "m", "-i", "env_name=prod")
    assert doc["inputs"] == {"count": 3, "ratio": 2, "mode": 2, "dry": False, "tags": ["a", 1],
                             "day": "2024-01-01", "env_name": "prod"}


def test_invalid_names_are_located_at_their_own_key(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/k.yaml": """
        mission: k
        objective: bad keys after good ones
        inputs:
          ok: {type: string, default: a}
          "bad name": {type: string, default: b}
        env: {OK: y, "A B": x, "9": z}
        tasks:
          good: {run: echo}
          other:
            run: echo
            env: {GOOD: a, bad-name: b}
          "bad id": {run: echo}
    """})
    letters = "(use letters, digits and '_', not starting with a digit)"
    assert validate_errors(root) == [
        f"missions/k.yaml:5:3: error: invalid input name 'bad name' {letters}",
        f"missions/k.yaml:6:14: error: invalid environment variable name 'A B' {letters}",
        f"missions/k.yaml:6:24: error: invalid environment variable name '9' {letters}",
        f"missions/k.yaml:11:20: error: invalid environment variable name 'bad-name' in task 'other' {letters}",
        "missions/k.yaml:12:3: error: invalid task id 'bad id' (use letters, digits, '_' and '-', not starting with '-')",
    ]


# -- --inputs-file ------------------------------------------------------------------------------

INPUTS = """
    mission: m
    objective: typed inputs read from a file
    inputs:
      tag: {type: string}
      count: {type: integer, default: 1}
    tasks:
      t: {run: "echo {{ inputs.tag }} {{ inputs.count }}"}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tag: a\ncount: [1\n",
         "inputs.yaml:3:1: error: did not find expected ',' or ']' while parsing a flow sequence"),
        ("tag: a\ncount: 2\ntag: b\n", "inputs.yaml:3:1: error: duplicate key 'tag' (first defined at line 1)"),
        ("tag: !!python/name:os.system a\n",
         ("inputs.yaml:1:6: error: unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system' "
          "(only plain YAML values are allowed)")),
    ],
    ids=["syntax", "duplicate-key", "tag"],
)
def test_an_inputs_file_is_read_like_workspace_files(tmp_path: Path, text: str, message: str) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": INPUTS})
    (root / "inputs.yaml").write_text(text, encoding="utf-8")
    result = run_cli(["plan", "m", "--inputs-file", "inputs.yaml"], root)
    assert (result.exit_code, result.stdout, result.stderr.splitlines()) == (2, "", [message])


def test_dates_in_an_inputs_file_stay_text(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": INPUTS})
    (root / "inputs.yaml").write_text("tag: 2024-01-01\n", encoding="utf-8")
    doc = plan_document(root, "m", "--inputs-file", "inputs.yaml")
    assert doc["inputs"] == {"tag": "2024-01-01", "count": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "count=2024-01-01"], "error: input 'count' expects integer, got 2024-01-01"),
        (["-i", "count=true"], "error: input 'count' expects integer, got true"),
        (["-i", "count=~"], "error: input 'count' expects integer, got null"),
        (["-i", "count=[1, x]"], "error: input 'count' expects integer, got [1, 'x']"),
    ],
    ids=["date", "boolean", "null", "list"],
)
def test_input_values_are_shown_as_yaml_writes_them(tmp_path: Path, args: list[str], message: str) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": INPUTS})
    result = run_cli(["plan", "m", "-i", "tag=v1", *args], root)
    assert (result.exit_code, result.stdout, result.stderr.splitlines()) == (2, "", [message])


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"in.yaml": "tag: a\ncount: abc\n"}, "in.yaml:2:8: error: input 'count' expects integer, got 'abc'"),
        ({"in.yaml": "tag: a\ncuont: 2\n"},
         "in.yaml:2:1: error: mission 'm' has no input 'cuont' (did you mean 'count'?)"),
        # the file a value was taken from is the one named: the later file wins per input
        ({"a.yaml": "tag: a\ncount: 1\n", "b.yaml": "# override\n# the count\ncount: [2]\n"},
         "b.yaml:3:8: error: input 'count' expects integer, got [2]"),
    ],
    ids=["type", "unknown", "later-file"],
)
def test_an_inputs_file_value_is_refused_where_it_is_written(tmp_path: Path, files: dict[str, str],
                                                             message: str) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": INPUTS, **files})
    args = [arg for name in files for arg in ("--inputs-file", name)]
    result = run_cli(["plan", "m", *args], root)
    assert (result.exit_code, result.stdout, result.stderr.splitlines()) == (2, "", [message])
    refused = run_cli(["run", "m", *args, "--format", "json"], root)
    doc = json.loads(refused.stdout)
    assert (refused.exit_code, doc["status"], doc["error"]) == (2, "refused", message)
    assert [f"{e['path']}:{e['line']}:{e['col']}" for e in doc["errors"]] == [message.split(": ")[0]]


def test_a_bad_inputs_file_value_overridden_by_i_is_not_an_error(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": INPUTS, "in.yaml": "tag: a\ncount: abc\n"})
    assert plan_document(root, "m", "--inputs-file", "in.yaml", "-i", "count=3")["inputs"]["count"] == 3


def test_a_secret_in_a_refused_inputs_file_value_is_masked(tmp_path: Path) -> None:
    mission = INPUTS.replace("    tasks:", "    secrets: [TOKEN]\n    tasks:")
    root = write_workspace(tmp_path, {"missions/m.yaml": mission, "in.yaml": "tag: a\ncount: hunter2\n"})
    result = run_cli(["plan", "m", "--inputs-file", "in.yaml"], root, env={"TOKEN": "hunter2"})
    assert (result.exit_code, result.stderr) == (2, "in.yaml:2:8: error: input 'count' expects integer, got '***'\n")


TYPED = """
    mission: typed
    objective: string and integer inputs
    inputs:
      env_name: {type: string, enum: [staging, prod], default: staging}
      tag: {type: string, default: none}
      n: {type: integer, default: 1}
    tasks:
      t: {run: echo}
"""


@pytest.mark.parametrize(("value", "expected"), [
    ('env_name="prod"', {"env_name": "prod"}),  # a quoted YAML scalar is unquoted
    ("tag='it''s'", {"tag": "it's"}),
    ("tag=1.10", {"tag": "1.10"}),  # anything else stays verbatim for a string input
    ('tag="unclosed', {"tag": '"unclosed'}),
    ("tag=yes", {"tag": "yes"}),
    ('n="2"', None),  # an integer input reads YAML: a quoted 2 is a string
])
def test_a_quoted_value_for_a_string_input_loses_its_quotes(tmp_path: Path, value: str, expected) -> None:
    root = write_workspace(tmp_path, {"missions/typed.yaml": TYPED})
    if expected is None:
        result = run_cli(["plan", "typed", "-i", value], root)
        assert (result.exit_code, result.stderr) == (2, "error: input 'n' expects integer, got '2'\n")
        return
    inputs = plan_document(root, "typed", "-i", value)["inputs"]
    assert {k: inputs[k] for k in expected} == expected


def test_several_inputs_files_merge_and_the_later_wins(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/typed.yaml": TYPED, "a.yaml": "env_name: prod\ntag: a\n",
                                      "b.yaml": "tag: b\nn: 6\n"})
    inputs = plan_document(root, "typed", "--inputs-file", "a.yaml", "--inputs-file", "b.yaml")["inputs"]
    assert inputs == {"env_name": "prod", "tag": "b", "n": 6}
    inputs = plan_document(root, "typed", "--inputs-file", "a.yaml", "-i", "tag=cli")["inputs"]
    assert inputs["tag"] == "cli"  # -i wins over every file


NUMBERS = """
    mission: numbers
    objective: integer and number inputs
    inputs:
      n: {type: integer, default: 1}
      f: {type: number, default: 1}
    tasks:
      t: {run: echo}
"""


@pytest.mark.parametrize(("value", "expected"), [
    ("n=012", {"n": 12}),  # decimal, not YAML 1.1's octal 10
    ("n=08", {"n": 8}),
    ("n=+7", {"n": 7}),
    ("f=1.5e3", {"f": 1500.0}),  # YAML 1.1 would want 1.5e+3
    ("f=-.5", {"f": -0.5}),
    ("n=1:20", "error: input 'n' expects integer, got '1:20'\n"),  # not YAML 1.1's base-60 80
    ("n=0x10", "error: input 'n' expects integer, got '0x10'\n"),
    ("f=1_000.5", "error: input 'f' expects number, got '1_000.5'\n"),
])
def test_numbers_from_the_command_line_are_read_as_decimals(tmp_path: Path, value: str, expected) -> None:
    root = write_workspace(tmp_path, {"missions/numbers.yaml": NUMBERS})
    if isinstance(expected, str):
        result = run_cli(["plan", "numbers", "-i", value], root)
        assert (result.exit_code, result.stderr) == (2, expected)
        return
    inputs = plan_document(root, "numbers", "-i", value)["inputs"]
    assert {k: inputs[k] for k in expected} == expected
