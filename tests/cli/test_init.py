"""`nexusmon init`: a scaffold that validates, plans and runs, and that a second init leaves alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nexusmon.cli.main import COMMANDS
from nexusmon.schemas import KINDS

REPO = Path(__file__).resolve().parents[2]
SCAFFOLD = [
    *(f"schemas/{kind}.schema.json" for kind in KINDS),
    "policies/default.yaml",
    "missions/hello.yaml",
    ".gitignore",
]


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    root = tmp_path / "ops"
    root.mkdir()
    return root


def created(out: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("created ")]


def test_init_creates_the_scaffold(fresh, cli) -> None:
    code, out, err = cli(["init"], fresh)
    assert (code, err) == (0, "")
    assert created(out) == SCAFFOLD
    assert out.splitlines()[-1] == f"workspace ready at {fresh.resolve()}; try: nexusmon plan hello && nexusmon run hello"
    for folder in ("missions", "runes", "policies", "plugins", "schemas"):
        assert (fresh / folder).is_dir()
    assert (fresh / ".gitignore").read_text(encoding="utf-8") == ".nexusmon/\n"


def test_scaffold_validates_and_plans(fresh, cli, plan_json) -> None:
    assert cli(["init"], fresh).exit_code == 0
    assert cli(["validate"], fresh) == (0, "ok: 2 files valid\n", "")
    doc = plan_json(fresh, "hello")
    assert [(t["id"], t["decision"]) for t in doc["tasks"]] == [("greet", "auto"), ("write", "auto")]


def test_scaffold_runs(fresh, cli) -> None:
    assert cli(["init"], fresh).exit_code == 0
    code, _, err = cli(["run", "hello", "-i", "name=Ada"], fresh)
    assert code == 0, err
    assert (fresh / "out" / "greeting.txt").read_text(encoding="utf-8") == "hello Ada from hello\n"


def test_written_schemas_are_the_shipped_ones(fresh, cli) -> None:
    assert cli(["init"], fresh).exit_code == 0
    for kind in KINDS:
        name = f"{kind}.schema.json"
        assert (fresh / "schemas" / name).read_bytes() == (REPO / "nexusmon" / "schemas" / name).read_bytes()


def test_scaffold_files_point_editors_at_the_schemas(fresh, cli) -> None:
    assert cli(["init"], fresh).exit_code == 0
    for rel, kind in (("missions/hello.yaml", "mission"), ("policies/default.yaml", "policy")):
        first = (fresh / rel).read_text(encoding="utf-8").splitlines()[0]
        assert first == f"# yaml-language-server: $schema=../schemas/{kind}.schema.json"
        assert (fresh / rel).parent.joinpath(f"../schemas/{kind}.schema.json").resolve().is_file()


def test_second_init_keeps_edited_files_and_creates_nothing(fresh, cli) -> None:
    assert cli(["init"], fresh).exit_code == 0
    hello = fresh / "missions" / "hello.yaml"
    edited = hello.read_text(encoding="utf-8").replace("default: world", "default: team")
    hello.write_text(edited, encoding="utf-8")
    (fresh / "schemas" / "rune.schema.json").unlink()
    code, out, err = cli(["init"], fresh)
    assert (code, err) == (0, "")
    assert created(out) == ["schemas/rune.schema.json"]
    assert hello.read_text(encoding="utf-8") == edited
    assert (fresh / ".gitignore").read_text(encoding="utf-8") == ".nexusmon/\n"
    assert cli(["init"], fresh).stdout.splitlines()[0].startswith("workspace ready at ")


def test_init_appends_to_an_existing_gitignore_once(fresh, cli) -> None:
    (fresh / ".gitignore").write_text("*.pyc\nbuild/", encoding="utf-8")
    first = cli(["init"], fresh).stdout
    assert "appended to .gitignore" in first.splitlines() and ".gitignore" not in created(first)
    assert ".gitignore" not in cli(["init"], fresh).stdout
    assert (fresh / ".gitignore").read_text(encoding="utf-8") == "*.pyc\nbuild/\n.nexusmon/\n"


def test_init_respects_an_existing_state_ignore(fresh, cli) -> None:
    (fresh / ".gitignore").write_text(".nexusmon\n", encoding="utf-8")
    assert ".gitignore" not in created(cli(["init"], fresh).stdout)
    assert (fresh / ".gitignore").read_text(encoding="utf-8") == ".nexusmon\n"


def test_init_with_dash_c_creates_the_directory(cli, tmp_path) -> None:
    code, _out, _ = cli(["-C", "new/ops", "init"], tmp_path)
    assert code == 0
    assert (tmp_path / "new" / "ops" / "missions" / "hello.yaml").is_file()
    assert cli(["-C", str(tmp_path / "new" / "ops"), "validate"], tmp_path).exit_code == 0


def test_init_does_not_touch_a_parent_workspace(make_workspace, cli, tmp_path) -> None:
    parent = make_workspace(tmp_path, {})
    child = parent / "sub"
    child.mkdir()
    assert cli(["init"], child).exit_code == 0
    assert (child / "missions" / "hello.yaml").is_file()
    assert not (parent / "missions" / "hello.yaml").exists()


@pytest.mark.skipif(importlib.util.find_spec(COMMANDS["policy"][0]) is None, reason="no policy command yet")
def test_scaffold_policy_tests_pass(fresh, cli) -> None:
    assert cli(["init"], fresh).exit_code == 0
    code, out, err = cli(["policy", "test"], fresh)
    assert code == 0, out + err


def test_init_in_a_workspace_keeps_its_missions_and_governance(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "missions/mine.yaml": "mission: hello\nobjective: my own hello\ntasks: {a: {run: echo}}\n",
        "policies/mine.yaml": "policy: mine\nrules: []\n"
                              "gates: {E: auto, D: auto, C: auto, B: auto, A: auto, S: auto}\n",
    })
    code, out, err = cli(["init"], root)
    assert (code, err) == (0, "")
    assert created(out) == [*(f"schemas/{kind}.schema.json" for kind in KINDS), ".gitignore"]
    assert sorted(p.name for p in (root / "missions").iterdir()) == ["mine.yaml"]
    assert sorted(p.name for p in (root / "policies").iterdir()) == ["mine.yaml"]
    assert cli(["validate"], root).exit_code == 0


def test_init_refreshes_schemas_an_older_nexusmon_wrote(fresh, cli) -> None:
    assert cli(["init"], fresh).exit_code == 0
    stale = fresh / "schemas" / "mission.schema.json"
    current = stale.read_text(encoding="utf-8")
    stale.write_text('{"title": "an older schema"}', encoding="utf-8")
    out = cli(["init"], fresh).stdout
    assert "updated schemas/mission.schema.json" in out.splitlines()
    assert stale.read_text(encoding="utf-8") == current
    assert cli(["doctor"], fresh).exit_code == 0
