"""The JSON Schemas: one source of truth, valid Draft 2020-12, documented for editors,
and the located, hinted errors users get when a file breaks them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from nexusmon.schemas import KINDS, load_schema, schema_text
from nexusmon.schemas.generate import schema_digest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "nexusmon" / "schemas"
TOP_LEVEL = REPO / "schemas"


def test_top_level_schemas_are_byte_identical_to_the_shipped_ones() -> None:
    top = sorted(p.name for p in TOP_LEVEL.glob("*.json"))
    shipped = sorted(p.name for p in SHIPPED.glob("*.json"))
    assert top == shipped == sorted(f"{kind}.schema.json" for kind in KINDS)
    for name in shipped:
        assert (TOP_LEVEL / name).read_bytes() == (SHIPPED / name).read_bytes(), f"schemas/{name} drifted"


@pytest.mark.parametrize("kind", KINDS)
def test_packaged_text_is_the_file(kind: str) -> None:
    assert schema_text(kind) == (SHIPPED / f"{kind}.schema.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = json.loads((SHIPPED / f"{kind}.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _at(schema: dict[str, Any], pointer: tuple[str, ...]) -> dict[str, Any]:
    node: Any = schema
    for part in pointer:
        node = node[part]
    assert isinstance(node, dict)
    return node


def undocumented(schema: dict[str, Any], objects: list[tuple[str, ...]]) -> list[str]:
    """``properties`` entries without a description under each object pointer."""
    missing = []
    for pointer in objects:
        for name, sub in _at(schema, pointer + ("properties",)).items():
            if "description" not in sub:
                missing.append("/".join(pointer + ("properties", name)))
    return missing


DOCUMENTED = {
    "mission": [(), ("$defs", "task"), ("$defs", "input"), ("properties", "constraints")],
    "rune": [(), ("$defs", "task"), ("$defs", "input")],
    "policy": [
        (), ("properties", "rules", "items"),
        ("properties", "rules", "items", "properties", "when"),
        ("properties", "rules", "items", "properties", "then"),
    ],
    "settings": [()],
}


@pytest.mark.parametrize(
    "kind",
    [
        "mission",
        "rune",
        "policy",
        "settings",
    ],
)
def test_keys_editors_complete_have_descriptions(kind: str) -> None:
    assert undocumented(load_schema(kind), DOCUMENTED[kind]) == []


def test_task_keys_are_the_same_for_missions_and_runes() -> None:
    mission, rune = load_schema("mission"), load_schema("rune")
    assert mission["$defs"]["task"] == rune["$defs"]["task"]
    assert mission["$defs"]["input"] == rune["$defs"]["input"]


def test_task_keys_match_the_spec() -> None:
    keys = set(load_schema("mission")["$defs"]["task"]["properties"])
    assert keys == {
        "run", "worker", "with", "uses", "needs", "if", "rank", "timeout", "retries", "retry_delay",
        "env", "sources", "artifacts", "cache", "matrix", "description",
    }


# -- what users see when a file breaks the schema ----------------------------------------


def test_unknown_keys_get_did_you_mean(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objectve: typo
        tasks:
          build: {run: echo hi, nedds: [x]}
    """})
    assert validate(root) == [
        "missions/a.yaml:1:1: error: missing required key 'objective' in mission",
        "missions/a.yaml:2:1: error: unknown key 'objectve' in mission (did you mean 'objective'?)",
        "missions/a.yaml:4:25: error: unknown key 'nedds' in task 'build' (did you mean 'needs'?)",
    ]


def test_wrong_types_name_what_was_expected(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: types
        constraints: {max_steps: many}
        tasks:
          t4: {run: 5}
          t5: {worker: noop, retries: -1}
          t6: {worker: noop, needs: {a: b}}
    """})
    assert validate(root) == [
        "missions/a.yaml:3:26: error: expected an integer, got a string",
        "missions/a.yaml:5:13: error: expected a string, got an integer in task 't4'",
        "missions/a.yaml:6:31: error: -1 is out of range (minimum 0) in task 't5'",
        "missions/a.yaml:7:29: error: {'a': 'b'} is not valid here in task 't6' (expected a string or a list of strings)",
    ]


def test_bad_rank_lists_the_ranks(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: ranks
        rank: Z
        tasks:
          build: {run: echo hi, rank: Q}
    """})
    assert validate(root) == [
        "missions/a.yaml:3:7: error: 'Z' is not one of E, D, C, B, A, S",
        "missions/a.yaml:5:31: error: 'Q' is not one of E, D, C, B, A, S in task 'build'",
    ]


def test_run_and_worker_together_are_refused(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: one of
        tasks:
          both: {run: echo, worker: shell}
          neither: {needs: []}
    """})
    assert validate(root) == [
        "missions/a.yaml:4:3: error: task 'both' must have exactly one of run, worker, uses (found run, worker)",
        "missions/a.yaml:5:3: error: task 'neither' must have exactly one of run, worker, uses",
    ]


def test_a_task_that_is_not_a_mapping_gets_one_error(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: a task written as a scalar
        tasks: {build: true, ship: [run]}
    """})
    assert validate(root) == [
        "missions/a.yaml:3:16: error: expected a mapping, got a boolean in task 'build'",
        "missions/a.yaml:3:28: error: expected a mapping, got a list in task 'ship'",
    ]


def test_bad_mission_id_and_category(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: Release_Notes
        objective: ids
        category: forje
        tasks:
          t: {worker: noop}
    """})
    assert validate(root) == [
        "missions/a.yaml:1:10: error: 'Release_Notes' does not match the pattern ^[a-z0-9][a-z0-9-]*$",
        "missions/a.yaml:3:11: error: 'forje' is not one of coin, forge, library, sanctuary (did you mean 'forge'?)",
    ]


def test_rune_and_policy_files_are_checked_against_their_schemas(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/r.yaml": """
            rune: r
            version: two
            tasks:
              t: {worker: noop}
        """,
        "policies/p.yaml": """
            policy: p
            rules:
              - id: x
                when: {wrker: noop}
                then: {rank: A}
        """,
    })
    assert validate(root) == [
        "policies/p.yaml:4:12: error: unknown key 'wrker' (did you mean 'worker'?)",
        "runes/r.yaml:2:10: error: expected an integer, got a string",
    ]


def test_settings_file_is_checked(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"nexusmon.yaml": "concurency: 2\n"})
    assert validate(root) == [
        "nexusmon.yaml:1:1: error: unknown key 'concurency' in settings (did you mean 'concurrency'?)",
    ]


@pytest.mark.parametrize("kind", ["mission", "rune", "policy", "settings"])
def test_fast_validators_are_generated_from_the_current_schemas(kind: str) -> None:
    module = import_module(f"nexusmon.schemas.fast_{kind}")
    assert module.SCHEMA_SHA256 == schema_digest(kind), (
        f"nexusmon/schemas/fast_{kind}.py is older than {kind}.schema.json: "
        "run `python -m nexusmon.schemas.generate`"
    )


@pytest.mark.parametrize("kind", ["mission", "rune", "policy", "settings"])
def test_fast_validators_work_with_fastjsonschema_before_2_22(kind: str, tmp_path: Path) -> None:
    # The newest fastjsonschema for Python 3.9 is 2.21, which has no JsonSchemaValuesException.
    # The generated module imports from fastjsonschema at run time, so stand an old one in.
    old = tmp_path / "fastjsonschema"
    old.mkdir()
    (old / "__init__.py").write_text(
        "class JsonSchemaException(ValueError):\n    pass\n\n\n"
        "class JsonSchemaValueException(JsonSchemaException):\n"
        "    def __init__(self, message, value=None, name=None, definition=None, rule=None):\n"
        "        super().__init__(message)\n"
        "        self.message, self.value, self.name = message, value, name\n"
        "        self.definition, self.rule = definition, rule\n"
    )
    source = (SHIPPED / f"fast_{kind}.py").read_text(encoding="utf-8")
    (tmp_path / f"fast_{kind}.py").write_text(source, encoding="utf-8")
    probe = (
        f"import fast_{kind} as m, fastjsonschema\n"
        "assert not hasattr(fastjsonschema, 'JsonSchemaValuesException')\n"
        "try:\n    m.validate([])\nexcept fastjsonschema.JsonSchemaValueException as e:\n"
        "    print('refused:', e.message)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: data must be object"), done.stdout
