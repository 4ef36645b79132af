"""The repository's own example workspace validates, and every example mission plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nexusmon.engine.project import open_project

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "missions").glob("*.y*ml") if p.suffix in (".yaml", ".yml"))

SAMPLE_VALUES: dict[str, Any] = {
    "string": "example", "integer": 1, "number": 1, "boolean": False, "array": [], "object": {},
}


def test_there_are_examples() -> None:
    if not EXAMPLES:
        pytest.skip("the repository's missions/ folder holds no examples yet")
    assert (REPO / "policies").is_dir()


def test_repository_workspace_validates(cli, tmp_path) -> None:
    code, out, err = cli(["-C", str(REPO), "--state-dir", str(tmp_path / "state"), "validate"], tmp_path)
    assert (code, err) == (0, ""), err
    assert out.startswith("ok: ")


def example(path: Path, tmp_path: Path) -> tuple[str, Path]:
    """The mission id of ``path`` and an inputs file with a value for every required input
    (the first enum value, else a value of its type)."""
    project = open_project(REPO)
    mission = next(m for m in project.workspace.missions if m.path == f"missions/{path.name}")
    values = {}
    for spec in mission.inputs:
        if not spec.has_default:
            values[spec.name] = spec.enum[0] if spec.enum else SAMPLE_VALUES.get(spec.type, "example")
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(yaml.safe_dump(values), encoding="utf-8")
    return mission.id, inputs


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_mission_plans(path: Path, cli, tmp_path) -> None:
    mission_id, inputs = example(path, tmp_path)
    state = tmp_path / "state"
    code, out, err = cli([
        "-C", str(REPO), "--state-dir", str(state),
        "plan", mission_id, "--inputs-file", str(inputs), "--format", "json",
    ], tmp_path)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["mission"] == mission_id and doc["tasks"], f"{path.name} plans no tasks"
    assert not state.exists(), "plan must not create state"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_mission_graphs(path: Path, cli, tmp_path) -> None:
    mission_id, inputs = example(path, tmp_path)
    code, out, err = cli(["-C", str(REPO), "graph", mission_id, "--inputs-file", str(inputs)], tmp_path)
    assert code == 0, err
    assert out.startswith("flowchart TD")
