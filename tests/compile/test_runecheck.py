"""`validate` checks runes that no mission calls, through a stand-in call it never shows."""

from __future__ import annotations

DANGLING = """
rune: dang
version: 1
inputs:
  x: {type: string, default: a}
  n: {type: integer}
  level: {type: string, enum: [low, high]}
tasks:
  a: {uses: nonexist-rune}
  b: {run: "echo {{ inputs.xx }} {{ inputs.n }} {{ inputs.level }}", needs: [zz]}
"""


def test_an_uncalled_rune_reports_every_problem_at_its_place(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"runes/dang.yaml": DANGLING})
    assert validate(root) == [
        "runes/dang.yaml:8:13: error: unknown rune 'nonexist-rune'",
        "runes/dang.yaml:9:12: error: undefined name 'inputs.xx' (did you mean 'inputs.x'?)",
        "runes/dang.yaml:9:78: error: task 'b' needs unknown task 'zz'",
    ]


def test_uncalled_runes_calling_each_other_are_a_cycle(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/one.yaml": "rune: one\nversion: 1\ntasks:\n  x: {uses: two}\n",
        "runes/two.yaml": "rune: two\nversion: 1\ntasks:\n  y: {uses: one}\n",
    })
    errors = validate(root, "runes/one.yaml")
    assert errors and all(e.startswith("runes/one.yaml:4:13: error: rune cycle:") for e in errors), errors


def test_an_old_version_nobody_calls_is_checked_and_a_good_rune_passes(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/build-v1.yaml": "rune: build\nversion: 1\ntasks:\n  t: {run: 'echo {{ inputs.gone }}'}\n",
        "runes/build-v2.yaml": "rune: build\nversion: 2\ninputs:\n  tag: {type: string}\n"
                               "tasks:\n  t: {run: 'echo {{ inputs.tag }}'}\n",
        "missions/m.yaml": "mission: m\nobjective: x\ntasks:\n  b: {uses: build@2, with: {tag: v1}}\n",
    })
    assert validate(root) == ["runes/build-v1.yaml:4:12: error: undefined name 'inputs.gone'"]
