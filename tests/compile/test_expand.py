"""Expansion: rune calls become `call.task` ids wired into the DAG; matrices become one task
per combination; every call-site mistake is a located error."""

from __future__ import annotations

import json

import pytest

DOCS_RUNE = """
rune: docs-build
version: 2
description: Render and check the docs
inputs:
  source: {type: string, default: docs}
  level: {type: integer, default: 1}
tasks:
  render: {run: 'echo render {{ inputs.source }}'}
  lint: {run: echo lint}
  check: {needs: [render], run: 'echo check {{ inputs.level }}'}
outputs:
  site_dir: 'site-{{ inputs.source }}'
  rendered: '{{ tasks.render.outputs.stdout }}'
"""

DOCS_MISSION = """
mission: docs
objective: build the manual
tasks:
  prep: {run: echo prep}
  docs: {uses: docs-build@2, needs: prep, with: {source: manual}}
  after:
    needs: [docs]
    run: 'echo {{ tasks.docs.outputs.site_dir }} / {{ tasks.docs.outputs.rendered }}'
"""


def tasks_of(doc):
    return {t["id"]: t for t in doc["tasks"]}


def ids_of(doc):
    return [t["id"] for t in doc["tasks"]]


@pytest.fixture
def docs_root(make_workspace, tmp_path):
    return make_workspace(tmp_path, {"runes/docs-build.yaml": DOCS_RUNE, "missions/docs.yaml": DOCS_MISSION})


def test_rune_tasks_are_named_call_dot_task(docs_root, plan_json) -> None:
    assert ids_of(plan_json(docs_root, "docs")) == ["prep", "docs.render", "docs.lint", "docs.check", "after"]


def test_call_needs_apply_to_roots_and_dependents_wait_for_leaves(docs_root, plan_json) -> None:
    tasks = tasks_of(plan_json(docs_root, "docs"))
    assert tasks["docs.render"]["needs"] == ["prep"]
    assert tasks["docs.lint"]["needs"] == ["prep"]
    assert tasks["docs.check"]["needs"] == ["docs.render"]
    assert tasks["after"]["needs"] == ["docs.lint", "docs.check"]


def test_call_inputs_reach_the_rune_tasks(docs_root, plan_json) -> None:
    tasks = tasks_of(plan_json(docs_root, "docs"))
    assert tasks["docs.render"]["params"] == {"run": "echo render manual"}
    assert tasks["docs.check"]["params"] == {"run": "echo check 1"}


def test_rune_outputs_are_placeholders_in_the_plan(docs_root, plan_json) -> None:
    after = tasks_of(plan_json(docs_root, "docs"))["after"]
    assert "<tasks.docs.outputs.site_dir>" in after["params"]["run"]
    assert "<tasks.docs.outputs.rendered>" in after["params"]["run"]


def test_rune_outputs_are_values_at_run_time(docs_root, cli) -> None:
    code, out, err = cli(["run", "docs", "--format", "json"], docs_root)
    assert code == 0, err
    after = tasks_of(json.loads(out))["after"]
    assert after["status"] == "succeeded"
    assert after["outputs"]["stdout"] == "site-manual / render manual"


def test_unknown_rune_output_is_an_error(make_workspace, validate, tmp_path) -> None:
    mission = DOCS_MISSION.replace("outputs.site_dir", "outputs.site_dri")
    root = make_workspace(tmp_path, {"runes/docs-build.yaml": DOCS_RUNE, "missions/docs.yaml": mission})
    assert validate(root) == ["missions/docs.yaml:8:10: error: undefined name 'tasks.docs.outputs.site_dri' (did you mean 'tasks.docs.outputs.site_dir'?)"]


def test_call_inputs_may_be_templated_from_mission_inputs(make_workspace, plan_json, tmp_path) -> None:
    mission = """
        mission: docs
        objective: templated call input
        inputs:
          dir: {type: string, default: guide}
        tasks:
          docs: {uses: docs-build, with: {source: '{{ inputs.dir }}-v2'}}
    """
    root = make_workspace(tmp_path, {"runes/docs-build.yaml": DOCS_RUNE, "missions/docs.yaml": mission})
    tasks = tasks_of(plan_json(root, "docs", "-i", "dir=api"))
    assert tasks["docs.render"]["params"] == {"run": "echo render api-v2"}


def test_call_rank_is_a_floor_for_the_rune_tasks(make_workspace, plan_json, tmp_path) -> None:
    mission = "mission: docs\nobjective: ranked\ntasks:\n  docs: {uses: docs-build, rank: B}\n"
    root = make_workspace(tmp_path, {"runes/docs-build.yaml": DOCS_RUNE, "missions/docs.yaml": mission})
    assert {t["rank"] for t in plan_json(root, "docs")["tasks"]} == {"B"}


def test_unversioned_call_uses_the_newest_version(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/tool-1.yaml": "rune: tool\nversion: 1\ntasks:\n  old-step: {run: echo old}\n",
        "runes/tool-10.yaml": "rune: tool\nversion: 10\ntasks:\n  newest-step: {run: echo newest}\n",
        "runes/tool-2.yaml": "rune: tool\nversion: 2\ntasks:\n  new-step: {run: echo new}\n",
        "missions/tools.yaml": """
            mission: tools
            objective: versions side by side
            tasks:
              newest: {uses: tool}
              pinned: {uses: tool@1}
        """,
    })
    assert ids_of(plan_json(root, "tools")) == ["newest.newest-step", "pinned.old-step"]


def test_nested_runes_expand_with_nested_ids(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/inner.yaml": """
            rune: inner
            version: 1
            inputs:
              word: {type: string}
            tasks:
              leaf: {run: 'echo {{ inputs.word }}'}
        """,
        "runes/outer.yaml": """
            rune: outer
            version: 1
            tasks:
              pre: {run: echo pre}
              sub: {uses: inner@1, needs: [pre], with: {word: nested}}
        """,
        "missions/nest.yaml": """
            mission: nest
            objective: runes calling runes
            tasks:
              o: {uses: outer@1}
              done: {needs: o, run: echo done}
        """,
    })
    tasks = tasks_of(plan_json(root, "nest"))
    assert list(tasks) == ["o.pre", "o.sub.leaf", "done"]
    assert tasks["o.sub.leaf"]["needs"] == ["o.pre"]
    assert tasks["o.sub.leaf"]["params"] == {"run": "echo nested"}
    assert tasks["done"]["needs"] == ["o.sub.leaf"]


def test_rune_call_site_mistakes_are_located(make_workspace, validate, tmp_path) -> None:
    rune = """
        rune: docs-build
        version: 2
        inputs:
          source: {type: string, default: docs}
          level: {type: integer}
        tasks:
          render: {run: 'echo {{ inputs.source }}'}
    """
    root = make_workspace(tmp_path, {"runes/docs-build.yaml": rune, "missions/a.yaml": """
        mission: a
        objective: call sites
        tasks:
          prep: {run: echo prep}
          d1: {uses: docs-bild}
          d2: {uses: docs-build@3}
          d3: {uses: docs-build, with: {level: 1, sorce: x}}
          d4: {uses: docs-build}
          d5: {uses: docs-build, with: {level: two}}
          d6: {uses: docs-build, with: {level: 1}, timeout: 3}
          d7: {uses: docs-build, with: {level: 1, source: '{{ tasks.prep.outputs.stdout }}'}, needs: prep}
    """})
    assert validate(root) == [
        "missions/a.yaml:5:14: error: unknown rune 'docs-bild' (did you mean 'docs-build'?)",
        "missions/a.yaml:6:14: error: rune 'docs-build' has no version 3 (versions: 2)",
        "missions/a.yaml:7:43: error: rune docs-build@2 has no input 'sorce' (did you mean 'source'?)",
        ("missions/a.yaml:8:14: error: rune docs-build@2 needs input 'level' (task 'd4') "
        "(add it under with: {level: ...})"),
        "missions/a.yaml:9:40: error: rune docs-build@2: input 'level' expects integer, got 'two'",
        ("missions/a.yaml:10:44: error: 'timeout' is not supported on a rune call (task 'd6') "
        "(set it on the rune's tasks instead)"),
        ("missions/a.yaml:11:51: error: rune inputs must be known when the mission is compiled "
        "(they cannot read task outputs, secrets or the run id)"),
    ]


def test_rune_cycle_is_reported_at_the_call_site(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/r1.yaml": "rune: r1\nversion: 1\ntasks:\n  x: {uses: r2}\n",
        "runes/r2.yaml": "rune: r2\nversion: 1\ntasks:\n  y: {uses: r1@1}\n",
        "missions/a.yaml": "mission: a\nobjective: x\ntasks:\n  go: {uses: r1}\n",
    })
    assert validate(root) == [
        "missions/a.yaml:4:14: error: task 'go' calls rune r1@1, which enters a rune cycle: r1@1 -> r2@1 -> r1@1",
        "runes/r2.yaml:4:13: error: rune cycle: r1@1 -> r2@1 -> r1@1",
    ]


def test_rune_calling_itself_is_a_cycle(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/r.yaml": "rune: r\nversion: 1\ntasks:\n  again: {uses: r@1}\n",
        "missions/a.yaml": "mission: a\nobjective: x\ntasks:\n  go: {uses: r}\n",
    })
    assert validate(root) == [
        "missions/a.yaml:4:14: error: task 'go' calls rune r@1, which enters a rune cycle: r@1 -> r@1",
        "runes/r.yaml:4:17: error: rune cycle: r@1 -> r@1",
    ]


def test_unknown_need_inside_a_rune_is_located_in_the_rune(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/r.yaml": "rune: r\nversion: 1\ntasks:\n  a: {run: echo}\n  b: {needs: [aa], run: echo}\n",
        "missions/m.yaml": "mission: m\nobjective: x\ntasks:\n  go: {uses: r}\n",
    })
    assert validate(root) == ["runes/r.yaml:5:15: error: task 'b' needs unknown task 'aa' (did you mean 'a'?)"]


# -- matrices ------------------------------------------------------------------------------

MATRIX = """
mission: matrix
objective: matrix expansion
tasks:
  test:
    matrix: {os: [linux, macos], py: ['3.12', '3.9']}
    run: 'echo {{ matrix.os }} {{ matrix.py }}'
  report: {needs: [test], run: echo done}
  flags:
    matrix: {debug: [true, false], level: [1]}
    worker: noop
"""


def test_matrix_ids_follow_key_order(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/matrix.yaml": MATRIX})
    assert ids_of(plan_json(root, "matrix")) == [
        "test[linux,3.12]", "test[linux,3.9]", "test[macos,3.12]", "test[macos,3.9]",
        "report", "flags[true,1]", "flags[false,1]",
    ]


def test_needs_on_a_matrix_waits_for_every_combination(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/matrix.yaml": MATRIX})
    report = tasks_of(plan_json(root, "matrix"))["report"]
    assert report["needs"] == ["test[linux,3.12]", "test[linux,3.9]", "test[macos,3.12]", "test[macos,3.9]"]


def test_matrix_combinations_with_the_same_id_are_refused(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: ids that collide
        tasks:
          m:
            matrix: {x: ["1,2", "1"], y: ["3", "2,3"]}
            run: echo {{ matrix.x }}/{{ matrix.y }}
          n: {matrix: {v: [a, 1, "1"]}, run: "true"}
        """})
    hint = " (make the values distinct as text and free of ',')"
    assert validate(root) == [
        "missions/m.yaml:5:13: error: matrix of task 'm' gives two combinations the same id 'm[1,2,3]'" + hint,
        "missions/m.yaml:7:15: error: matrix of task 'n' gives two combinations the same id 'n[1]'" + hint,
    ]


def test_a_huge_matrix_is_refused_before_it_is_built(make_workspace, validate, tmp_path) -> None:
    axes = ", ".join(f"{name}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" for name in "abcdefghij")
    root = make_workspace(tmp_path, {"missions/m.yaml": f"""
        mission: m
        objective: ten billion combinations
        tasks:
          t: {{matrix: {{{axes}}}, run: "true"}}
        """})
    assert validate(root) == [
        "missions/m.yaml:4:15: error: matrix of task 't' expands to 10000000000 tasks, more than 10000"]


def test_the_whole_expansion_is_bounded_before_it_is_built(make_workspace, validate, tmp_path) -> None:
    axis = "[" + ", ".join(str(i) for i in range(100)) + "]"
    tasks = "".join(f"  t{i}: {{matrix: {{a: {axis}, b: {axis}}}, run: 'true'}}\n" for i in range(30))
    root = make_workspace(tmp_path, {
        "missions/big.yaml": "mission: big\nobjective: 300,000 tasks\ntasks:\n" + tasks,
        "missions/capped.yaml": "mission: capped\nobjective: o\nconstraints: {max_steps: 100}\ntasks:\n" + tasks,
    })
    assert validate(root) == [
        ("missions/big.yaml:4:3: error: mission expands to 300000 tasks, more than 100000"
         " (set constraints.max_steps to allow more)"),
        "missions/capped.yaml:3:26: error: mission expands to 300000 tasks, more than max_steps 100",
    ]


def test_matrix_values_are_rendered_per_combination(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/matrix.yaml": MATRIX})
    tasks = tasks_of(plan_json(root, "matrix"))
    assert tasks["test[macos,3.9]"]["params"] == {"run": "echo macos 3.9"}


def test_matrix_tasks_run_and_dependents_follow(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: run a matrix
        tasks:
          make: {matrix: {n: [a, b, c]}, run: 'echo {{ matrix.n }} >> made.txt'}
          count: {needs: make, run: 'wc -l < made.txt | tr -d " "'}
    """})
    code, out, err = cli(["run", "m", "--format", "json"], root)
    assert code == 0, err
    tasks = tasks_of(json.loads(out))
    assert tasks["count"]["outputs"]["stdout"] == "3"
    assert sorted((root / "made.txt").read_text(encoding="utf-8").split()) == ["a", "b", "c"]


def test_max_steps_counts_tasks_after_expansion(make_workspace, validate, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/pair.yaml": "rune: pair\nversion: 1\ntasks:\n  a: {worker: noop}\n  b: {worker: noop}\n",
        "missions/steps.yaml": """
            mission: steps
            objective: five tasks after expansion, limit four
            constraints: {max_steps: 4}
            tasks:
              m: {matrix: {x: [a, b, c]}, worker: noop}
              p: {uses: pair}
        """,
    })
    line = "missions/steps.yaml:3:26: error: mission expands to 5 tasks, more than max_steps 4"
    assert validate(root) == [line]
    code, out, err = cli(["plan", "steps"], root)
    assert (code, out, err.splitlines()) == (2, "", [line])


def test_a_rune_call_s_inner_tasks_are_readable_downstream(make_workspace, cli, validate, tmp_path) -> None:
    mission = """
        mission: docs
        objective: read a rune task that is not a leaf
        tasks:
          docs: {uses: docs-build@2}
          after: {needs: docs, run: "echo {{ tasks['docs.render'].outputs.stdout }}"}
          typo: {needs: docs, run: "echo {{ tasks['docs.rendr'].outputs.stdout }}"}
    """
    root = make_workspace(tmp_path, {"runes/docs-build.yaml": DOCS_RUNE, "missions/docs.yaml": mission})
    assert validate(root) == [
        ("missions/docs.yaml:6:28: error: task 'typo' reads tasks.docs.rendr, but there is no task "
        "'docs.rendr' (did you mean 'docs.render'?)")]
    (root / "missions/docs.yaml").write_text(
        (root / "missions/docs.yaml").read_text().split("  typo:")[0], encoding="utf-8")
    code, out, err = cli(["run", "docs", "--format", "json"], root)
    assert code == 0, err
    assert tasks_of(json.loads(out))["after"]["outputs"]["stdout"] == "render docs"


def test_names_that_are_also_mapping_methods_read_their_values(make_workspace, plan_json, cli, tmp_path) -> None:
    mission = """
        mission: names
        objective: inputs, env and matrix names that dicts also have as methods
        inputs: {items: {type: string, default: hello}, keys: {type: string, default: k}}
        env: {values: ev}
        tasks:
          a: {run: "echo {{ inputs.items }} {{ inputs.keys }} {{ env.values }} {{ matrix.copy }}", matrix: {copy: [1]}}
          b: {needs: "a", run: "echo {{ tasks['a[1]'].outputs.get }}"}
    """
    root = make_workspace(tmp_path, {"missions/names.yaml": mission})
    first, second = plan_json(root, "names"), plan_json(root, "names")
    assert tasks_of(first)["a[1]"]["params"] == {"run": "echo hello k ev 1"}
    assert first == second, "the plan changed between two identical calls"
    code, out, err = cli(["run", "names", "--format", "json"], root)
    assert code == 1, err
    b = tasks_of(json.loads(out))["b"]
    assert b["error"] == ("missions/names.yaml:7:24: template error: 'get' is a method of the value it was "
                          "read from, not a value (no input, output or key of that name)")


def test_reading_a_matrix_task_as_a_whole_is_a_validation_error(make_workspace, validate, tmp_path) -> None:
    mission = """
        mission: m
        objective: read a matrix task
        tasks:
          build: {matrix: {os: [linux, mac]}, run: "echo {{ matrix.os }}"}
          use: {needs: build, run: "echo {{ tasks.build.outputs.stdout }}"}
          one: {needs: build, run: "echo {{ tasks['build[mac]'].outputs.stdout }}"}
    """
    root = make_workspace(tmp_path, {"missions/m.yaml": mission})
    assert validate(root) == [
        ("missions/m.yaml:5:28: error: task 'use' reads tasks.build, but 'build' has a matrix: there is "
        "no one task 'build' to read (read one of its tasks, e.g. tasks['build[linux]'])")]
