"""Workspace discovery and loading: which files count, how they are named, what is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexusmon.errors import UsageError
from nexusmon.spec.workspace import find_root, load_workspace

OK_MISSION = """
mission: {id}
objective: a valid mission
tasks:
  t: {{worker: noop}}
"""


def test_root_is_the_first_directory_with_missions(tmp_path: Path) -> None:
    (tmp_path / "ws" / "missions").mkdir(parents=True)
    deep = tmp_path / "ws" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == (tmp_path / "ws").resolve()


def test_root_may_be_marked_by_settings_file_alone(tmp_path: Path) -> None:
    (tmp_path / "ws" / "sub").mkdir(parents=True)
    (tmp_path / "ws" / "nexusmon.yaml").write_text("concurrency: 2\n", encoding="utf-8")
    assert find_root(tmp_path / "ws" / "sub") == (tmp_path / "ws").resolve()


def test_nearest_workspace_wins(tmp_path: Path) -> None:
    (tmp_path / "outer" / "missions").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / "missions").mkdir(parents=True)
    assert find_root(tmp_path / "outer" / "inner" / "missions") == (tmp_path / "outer" / "inner").resolve()


def test_no_workspace_is_a_usage_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        find_root(tmp_path)
    assert str(info.value) == (
        f"no nexusmon workspace at or above {tmp_path.resolve()} (no nexusmon.yaml or missions/); "
        "run `nexusmon init` or pass -C DIR"
    )


def test_yaml_and_yml_files_load_and_other_files_are_ignored(make_workspace, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "missions/a.yaml": OK_MISSION.format(id="a"),
        "missions/b.yml": OK_MISSION.format(id="b"),
        "missions/notes.txt": "not yaml: [",
        "missions/old.yaml.bak": "not yaml: [",
        "missions/nested/c.yaml": OK_MISSION.format(id="c"),
    })
    loaded = load_workspace(root)
    assert loaded.diagnostics == []
    assert [m.id for m in loaded.workspace.missions] == ["a", "b"]
    assert sorted(loaded.documents) == ["missions/a.yaml", "missions/b.yml"]


def test_files_are_named_relative_to_the_root(make_workspace, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": OK_MISSION.format(id="a")})
    mission = load_workspace(root).workspace.missions[0]
    assert mission.path == "missions/a.yaml"
    assert str(mission.loc("tasks", "t")) == "missions/a.yaml:4:6"


def test_settings_are_read(make_workspace, tmp_path) -> None:
    root = make_workspace(tmp_path, {"nexusmon.yaml": "state_dir: .state\nconcurrency: 3\n"})
    settings = load_workspace(root).workspace.settings
    assert (settings.state_dir, settings.concurrency) == (".state", 3)


def test_defaults_are_applied_once(make_workspace, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": OK_MISSION.format(id="a")})
    mission = load_workspace(root).workspace.missions[0]
    task = mission.tasks[0]
    assert (mission.category, mission.rank.name) == ("forge", "E")
    assert (task.retries, task.retry_delay, task.needs, task.cache) == (0, 1.0, (), None)


def test_a_broken_file_does_not_hide_the_others(make_workspace, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "missions/a.yaml": OK_MISSION.format(id="a"),
        "missions/b.yaml": "mission: b\nobjective: [\n",
    })
    loaded = load_workspace(root)
    assert [m.id for m in loaded.workspace.missions] == ["a"]
    assert [d.location.path for d in loaded.diagnostics] == ["missions/b.yaml"]


def test_duplicate_mission_ids_are_reported_in_both_files(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "missions/a.yaml": OK_MISSION.format(id="deploy"),
        "missions/b.yaml": OK_MISSION.format(id="deploy"),
    })
    assert validate(root) == [
        "missions/a.yaml:1:10: error: duplicate mission id 'deploy' (also defined at missions/b.yaml:1:10)",
        "missions/b.yaml:1:10: error: duplicate mission id 'deploy' (also defined at missions/a.yaml:1:10)",
    ]


def test_duplicate_rune_versions_are_reported(make_workspace, validate, tmp_path) -> None:
    rune = "rune: r\nversion: 1\ntasks:\n  t: {worker: noop}\n"
    root = make_workspace(tmp_path, {"runes/a.yaml": rune, "runes/b.yaml": rune})
    assert validate(root) == [
        "runes/a.yaml:2:10: error: duplicate rune 'r@1' (also defined at runes/b.yaml:2:10)",
        "runes/b.yaml:2:10: error: duplicate rune 'r@1' (also defined at runes/a.yaml:2:10)",
    ]


def test_two_versions_of_a_rune_live_side_by_side(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/r1.yaml": "rune: r\nversion: 1\ntasks:\n  t: {worker: noop}\n",
        "runes/r2.yaml": "rune: r\nversion: 2\ntasks:\n  t: {worker: noop}\n",
    })
    assert validate(root) == []


def test_second_policy_defining_gates_is_an_error(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "policies/a.yaml": "policy: a\ngates: {E: auto}\n",
        "policies/b.yaml": "policy: b\nrules: []\ngates: {E: review}\nomens: {warn: 1}\n",
        "policies/c.yaml": "policy: c\nomens: {warn: 2}\n",
    })
    assert validate(root) == [
        ("policies/b.yaml:3:1: error: 'gates' is already defined in policies/a.yaml:2 "
        "(define gates in one policy file only)"),
        ("policies/c.yaml:2:1: error: 'omens' is already defined in policies/b.yaml:4 "
        "(define omens in one policy file only)"),
    ]


def test_invalid_regex_in_run_matches(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"policies/p.yaml": """
        policy: p
        rules:
          - id: bad-regex
            when: {run_matches: 'terraform(('}
            then: {rank: A}
    """})
    assert validate(root) == [
        ("policies/p.yaml:4:25: error: rule 'bad-regex': invalid regular expression 'terraform((': "
        "missing ), unterminated subpattern at position 10"),
    ]


def test_duplicate_policy_names(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"policies/a.yaml": "policy: p\n", "policies/b.yaml": "policy: p\n"})
    assert validate(root) == [
        "policies/a.yaml:1:9: error: duplicate policy name 'p' (also defined at policies/b.yaml:1:9)",
        "policies/b.yaml:1:9: error: duplicate policy name 'p' (also defined at policies/a.yaml:1:9)",
    ]



def test_a_broken_rune_is_reported_once_not_as_unknown(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/r.yaml": "rune: r\nversion: 1\ntasks:\n  t: {worker: noop, bogus: 1}\n",
        "missions/a.yaml": "mission: a\nobjective: x\ntasks:\n  c: {uses: r@1}\n",
    })
    assert validate(root) == ["runes/r.yaml:4:21: error: unknown key 'bogus' in task 't'"]


def test_a_dangling_symlink_is_a_located_error_not_a_missing_file(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": OK_MISSION.format(id="a")})
    (root / "missions" / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    link = f"(a symbolic link to {tmp_path / 'nowhere.yaml'})"
    assert validate(root) == [f"missions/gone.yaml:1:1: error: cannot read file: No such file or directory {link}"]


def test_a_symlinked_file_is_named_as_the_link(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"shared/b.yaml": OK_MISSION.format(id="b") + "  u: {worker: nope}\n"})
    (root / "missions" / "b.yaml").symlink_to(Path("..") / "shared" / "b.yaml")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("just text\n", encoding="utf-8")
    (root / "missions" / "c.yaml").symlink_to(outside)
    errors = validate(root)
    assert [e.split(": error:")[0] for e in errors] == ["missions/b.yaml:5:15", "missions/c.yaml:1:1"], errors
    assert validate(root, "missions/b.yaml")[0].startswith("missions/b.yaml:5:15: error: unknown worker 'nope'")
