"""The compiler: DAG checks, references between tasks, typed inputs, stable order and digests."""

from __future__ import annotations

import pytest

from nexusmon.engine.project import compile_plan, find_mission, open_project


def tasks_of(doc):
    return {t["id"]: t for t in doc["tasks"]}


# -- the DAG ----------------------------------------------------------------------------------


def test_unknown_needs_get_did_you_mean(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/deploy.yaml": """
        mission: deploy
        objective: typo in needs
        tasks:
          build: {run: echo build}
          publish: {needs: biuld, run: echo publish}
          notify: {needs: [build, publsh, zzz], run: echo notify}
    """})
    assert validate(root) == [
        "missions/deploy.yaml:5:20: error: task 'publish' needs unknown task 'biuld' (did you mean 'build'?)",
        "missions/deploy.yaml:6:27: error: task 'notify' needs unknown task 'publsh' (did you mean 'publish'?)",
        "missions/deploy.yaml:6:35: error: task 'notify' needs unknown task 'zzz'",
    ]


def test_cycle_is_reported_as_a_path(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/c.yaml": """
        mission: c
        objective: cycle
        tasks:
          a: {needs: c, run: echo}
          b: {needs: [a], run: echo}
          c: {needs: [b], run: echo}
          free: {run: echo}
    """})
    errors = validate(root)
    assert len(errors) == 1
    prefix, cycle = errors[0].split(": error: dependency cycle: ")
    nodes = cycle.split(" -> ")
    assert nodes[0] == nodes[-1] and sorted(nodes[:-1]) == ["a", "b", "c"]
    for need, task in zip(nodes[1:], nodes):  # shown as "a needs b"
        assert {"a": "c", "b": "a", "c": "b"}[task] == need, cycle
    assert prefix == {"a": "missions/c.yaml:4:14", "b": "missions/c.yaml:5:14", "c": "missions/c.yaml:6:14"}[nodes[0]]


def test_two_task_cycle_message(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/c.yaml": """
        mission: c
        objective: cycle
        tasks:
          a: {needs: b, run: echo}
          b: {needs: [a], run: echo}
    """})
    assert validate(root) in (
        ["missions/c.yaml:4:14: error: dependency cycle: a -> b -> a"],
        ["missions/c.yaml:5:14: error: dependency cycle: b -> a -> b"],
    )


def test_self_loop(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/c.yaml": """
        mission: c
        objective: self loop
        tasks:
          again: {needs: [again], run: echo}
    """})
    assert validate(root) == ["missions/c.yaml:4:18: error: dependency cycle: again -> again"]


RENDER_RUNE = """
    rune: render
    version: 1
    tasks:
      render: {run: echo rendered}
"""


def test_a_rune_call_that_needs_itself_is_named_in_the_mission(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"runes/render.yaml": RENDER_RUNE, "missions/c.yaml": """
        mission: c
        objective: a call needing itself
        tasks:
          deploy: {uses: render, needs: deploy}
    """})
    assert validate(root) == ["missions/c.yaml:4:33: error: dependency cycle: deploy -> deploy"]


def test_a_cycle_through_a_rune_call_is_named_in_the_mission(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"runes/render.yaml": RENDER_RUNE, "missions/c.yaml": """
        mission: c
        objective: a cycle through a call
        tasks:
          docs: {uses: render, needs: [publish]}
          publish: {needs: [docs], run: echo}
    """})
    assert validate(root) == [
        "missions/c.yaml:4:31: error: dependency cycle: docs.render -> publish -> docs.render"
    ]


def test_two_rune_calls_needing_each_other_are_named_in_the_mission(
    make_workspace, validate, tmp_path,
) -> None:
    root = make_workspace(tmp_path, {"runes/render.yaml": RENDER_RUNE, "missions/c.yaml": """
        mission: c
        objective: calls in a cycle
        tasks:
          site: {uses: render, needs: [docs]}
          docs: {uses: render, needs: [site]}
    """})
    assert validate(root) == [
        "missions/c.yaml:4:31: error: dependency cycle: site.render -> docs.render -> site.render"
    ]


def test_unknown_worker_gets_did_you_mean(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/w.yaml": """
        mission: w
        objective: workers
        tasks:
          t1: {worker: shel}
          t2: {worker: teleport}
    """})
    assert validate(root) == [
        "missions/w.yaml:4:16: error: unknown worker 'shel' in task 't1' (did you mean 'shell'?)",
        "missions/w.yaml:5:16: error: unknown worker 'teleport' in task 't2'",
    ]


def test_order_is_topological_and_keeps_declaration_order(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/o.yaml": """
        mission: o
        objective: order
        tasks:
          report: {needs: [test, lint], worker: noop}
          test: {needs: build, worker: noop}
          lint: {worker: noop}
          build: {worker: noop}
          docs: {worker: noop}
    """})
    assert [t["id"] for t in plan_json(root, "o")["tasks"]] == ["lint", "build", "test", "report", "docs"]


# -- reading other tasks ------------------------------------------------------------------------

READS = """
mission: reads
objective: task references
tasks:
  build: {run: echo build}
  test: {needs: build, run: echo test}
  package: {needs: test, run: 'echo {{ tasks.build.outputs.stdout }}'}
  sneaky: {run: 'echo {{ tasks.build.outputs.stdout }}'}
  guarded: {worker: noop, if: "tasks.build.status == 'succeeded'"}
  env-reader: {worker: noop, env: {B: '{{ tasks.build.outputs.stdout }}'}}
"""


def test_reading_a_task_that_is_not_needed_is_an_error(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/reads.yaml": READS})
    assert validate(root) == [
        ("missions/reads.yaml:7:17: error: task 'sneaky' reads tasks.build but does not need 'build' "
        "(add 'build' to needs)"),
        ("missions/reads.yaml:8:31: error: task 'guarded' reads tasks.build but does not need 'build' "
        "(add 'build' to needs)"),
        ("missions/reads.yaml:9:39: error: task 'env-reader' reads tasks.build but does not need 'build' "
        "(add 'build' to needs)"),
    ]


def test_transitive_reference_is_allowed(make_workspace, validate, tmp_path) -> None:
    mission = "\n".join(line for line in READS.splitlines() if not line.startswith(("  sneaky", "  guarded", "  env")))
    root = make_workspace(tmp_path, {"missions/reads.yaml": mission})
    assert validate(root) == []


def test_reading_an_unknown_task_gets_did_you_mean(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/reads.yaml": """
        mission: reads
        objective: typo
        tasks:
          build: {run: echo}
          use: {needs: build, run: 'echo {{ tasks.buidl.outputs.stdout }}'}
    """})
    code, _, err = cli(["validate"], root)
    assert code == 1
    assert (
        "missions/reads.yaml:5:28: error: task 'use' reads tasks.buidl, but there is no task 'buidl' "
        "(did you mean 'build'?)"
    ) in err.splitlines()



def test_reading_an_unknown_task_is_reported_once(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/reads.yaml": """
        mission: reads
        objective: typo
        tasks:
          build: {run: echo}
          use: {needs: build, run: 'echo {{ tasks.buidl.outputs.stdout }}'}
    """})
    assert validate(root) == [
        ("missions/reads.yaml:5:28: error: task 'use' reads tasks.buidl, but there is no task 'buidl' "
        "(did you mean 'build'?)"),
    ]


def test_mission_env_cannot_read_tasks(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/e.yaml": """
        mission: e
        objective: env reads a task
        env: {X: '{{ tasks.a.outputs.stdout }}'}
        tasks:
          a: {run: echo}
    """})
    assert validate(root) == ["missions/e.yaml:3:10: error: the mission's env cannot read task results"]


def test_invalid_files_stop_plan_with_exit_2(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/reads.yaml": READS})
    code, out, err = cli(["plan", "reads"], root)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 3 and all(": error: " in line for line in err.splitlines())


# -- inputs -------------------------------------------------------------------------------------

INPUTS = """
mission: release
objective: typed inputs
inputs:
  tag: {type: string, default: v1.0.0}
  dry: {type: boolean, default: false}
  count: {type: integer, default: 1}
  ratio: {type: number, default: 0.5}
  env_name: {type: string, enum: [staging, prod]}
tasks:
  show: {run: 'echo {{ inputs.tag }} {{ inputs.dry }} {{ inputs.count }} {{ inputs.ratio }} {{ inputs.env_name }}'}
"""


@pytest.fixture
def inputs_root(make_workspace, tmp_path):
    return make_workspace(tmp_path, {"missions/release.yaml": INPUTS})


def test_cli_inputs_are_typed(inputs_root, plan_json) -> None:
    doc = plan_json(inputs_root, "release", "-i", "dry=true", "-i", "count=3", "-i", "ratio=2",
                    "-i", "env_name=prod", "-i", "tag=1.0")
    assert doc["inputs"] == {"tag": "1.0", "dry": True, "count": 3, "ratio": 2, "env_name": "prod"}
    assert doc["tasks"][0]["params"] == {"run": "echo 1.0 true 3 2 prod"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "dry=perhaps"], "error: input 'dry' expects boolean, got 'perhaps'"),
        (["-i", "count=1.5"], "error: input 'count' expects integer, got 1.5"),
        (["-i", "ratio=.inf"], "error: input 'ratio' expects finite numbers, got .inf"),
        (["-i", "ratio=-.Inf"], "error: input 'ratio' expects finite numbers, got -.inf"),
        (["-i", "ratio=.nan"], "error: input 'ratio' expects finite numbers, got .nan"),
        (["-i", "env_name=dev"], "error: input 'env_name' must be one of staging, prod, got 'dev'"),
        (["-i", "verison=1"], "error: mission 'release' has no input 'verison'"),
        (["-i", "tg=1"], "error: mission 'release' has no input 'tg' (did you mean 'tag'?)"),
        (["-i", "noequals"], "error: -i expects name=value, got 'noequals'"),
        ([], "error: mission 'release' needs input 'env_name' (give it with -i env_name=...)"),
    ],
    ids=["bad-boolean", "float-for-integer", "infinity", "minus-infinity", "nan", "enum", "unknown", "did-you-mean", "no-equals", "missing"],
)
def test_bad_inputs_are_usage_errors(inputs_root, cli, args, message) -> None:
    if "env_name" not in " ".join(args) and args:
        args = [*args, "-i", "env_name=prod"]
    code, out, err = cli(["plan", "release", *args], inputs_root)
    assert (code, out, err.splitlines()) == (2, "", [message])
    assert "Traceback" not in err


def test_inputs_file_gives_typed_values(inputs_root, plan_json, tmp_path) -> None:
    values = tmp_path / "inputs.yaml"
    values.write_text("env_name: staging\ncount: 7\ntag: '2.0'\n", encoding="utf-8")
    doc = plan_json(inputs_root, "release", "--inputs-file", str(values), "-i", "count=9")
    assert doc["inputs"] == {"tag": "2.0", "dry": False, "count": 9, "ratio": 0.5, "env_name": "staging"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "must hold a mapping of input names to values"),
        ("[a, b]\n", "must hold a mapping of input names to values"),
    ],
    ids=["list", "flow-list"],
)
def test_bad_inputs_file_is_a_usage_error(inputs_root, cli, tmp_path, text, message) -> None:
    values = tmp_path / "inputs.yaml"
    values.write_text(text, encoding="utf-8")
    code, out, err = cli(["plan", "release", "--inputs-file", str(values)], inputs_root)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err


def test_compile_api_gives_the_same_plan(inputs_root) -> None:
    project = open_project(inputs_root)
    mission = find_mission(project, "release")
    plan = compile_plan(project, mission, {"env_name": "prod"}, {"count": 2})
    assert [t.id for t in plan.tasks] == ["show"]
    assert plan.inputs["count"] == 2 and plan.inputs["env_name"] == "prod"
    assert plan.tasks[0].params == {"run": "echo v1.0.0 false 2 0.5 prod"}


# -- plan digests -------------------------------------------------------------------------------

DIGEST = """
mission: dg
objective: digests
tasks:
  build: {run: echo build}
  ship: {needs: build, run: echo ship}
"""


def test_plan_digest_is_stable_across_compiles(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/dg.yaml": DIGEST})
    first = [t["digest"] for t in plan_json(root, "dg")["tasks"]]
    second = [t["digest"] for t in plan_json(root, "dg")["tasks"]]
    assert first == second
    assert all(d.startswith("sha256:") for d in first) and first[0] != first[1]


def test_plan_digest_changes_with_the_command_only(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/dg.yaml": DIGEST})
    before = {t["id"]: t["digest"] for t in plan_json(root, "dg")["tasks"]}
    (root / "missions" / "dg.yaml").write_text(
        (root / "missions" / "dg.yaml").read_text(encoding="utf-8").replace("echo ship", "echo ship --force"),
        encoding="utf-8",
    )
    after = {t["id"]: t["digest"] for t in plan_json(root, "dg")["tasks"]}
    assert after["build"] == before["build"]
    assert after["ship"] != before["ship"]


def test_plan_digest_follows_inputs_and_rank(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/dg.yaml": """
        mission: dg
        objective: digests
        inputs:
          tag: {type: string, default: a}
        tasks:
          ship: {run: 'echo {{ inputs.tag }}'}
    """})
    a = plan_json(root, "dg")["tasks"][0]["digest"]
    assert plan_json(root, "dg", "-i", "tag=a")["tasks"][0]["digest"] == a
    assert plan_json(root, "dg", "-i", "tag=b")["tasks"][0]["digest"] != a
    (root / "policies").mkdir()
    (root / "policies" / "p.yaml").write_text(
        "policy: p\nrules:\n  - id: up\n    when: {task: ship}\n    then: {rank: B}\n", encoding="utf-8",
    )
    assert plan_json(root, "dg")["tasks"][0]["digest"] != a


# -- sources and artifacts stay in the workspace -------------------------------------------------


def test_patterns_that_leave_the_workspace_are_located_errors(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/paths.yaml": """
        mission: paths
        objective: patterns outside the workspace
        tasks:
          abs: {run: "true", sources: [/etc/passwd]}
          up: {run: "true", artifacts: "../outside.txt"}
          deep: {run: "true", sources: [src/a.txt, "src/**/../../x"]}
          empty: {run: "true", artifacts: [""]}
          fine: {run: "true", sources: ["src/**/*.py", ./docs], artifacts: [dist/*.whl]}
    """})
    hint = "(patterns are relative to the workspace root)"
    assert validate(root) == [
        f"missions/paths.yaml:4:32: error: task 'abs': sources pattern '/etc/passwd' is absolute {hint}",
        f"missions/paths.yaml:5:32: error: task 'up': artifacts pattern '../outside.txt' climbs out of the workspace with '..' {hint}",
        f"missions/paths.yaml:6:44: error: task 'deep': sources pattern 'src/**/../../x' climbs out of the workspace with '..' {hint}",
        f"missions/paths.yaml:7:36: error: task 'empty': artifacts pattern '' is empty {hint}",
    ]


def test_templates_in_patterns_are_located_errors(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: a pattern that looks rendered but is not
        tasks:
          m: {matrix: {i: [1, 2]}, run: "touch out-{{ matrix.i }}", artifacts: ["out-{{ matrix.i }}"]}
          s: {run: "true", sources: ["{% if true %}x{% endif %}"]}
    """})
    why = "is a template, but patterns are not rendered (match the files with a glob instead, such as 'dist/*.txt')"
    assert validate(root) == [
        f"missions/m.yaml:4:73: error: task 'm': artifacts pattern 'out-{{{{ matrix.i }}}}' {why}",
        f"missions/m.yaml:5:30: error: task 's': sources pattern '{{% if true %}}x{{% endif %}}' {why}",
    ]


def test_a_bad_pattern_in_a_rune_is_reported_once_in_the_rune(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/pack.yaml": """
            rune: pack
            version: 1
            tasks:
              zip: {run: "true", artifacts: [/tmp/out.zip]}
        """,
        "missions/two-calls.yaml": """
            mission: two-calls
            objective: the rune is called twice
            tasks:
              a: {uses: pack}
              b: {uses: pack}
        """,
    })
    assert validate(root) == [
        ("runes/pack.yaml:4:34: error: task 'zip': artifacts pattern '/tmp/out.zip' is absolute "
         "(patterns are relative to the workspace root)"),
    ]


def test_shell_with_is_checked_for_run_tasks_too(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/cwd.yaml": """
        mission: cwd
        objective: with.cwd and friends
        tasks:
          abs: {run: pwd, with: {cwd: /tmp}}
          up: {worker: shell, with: {run: pwd, cwd: ../elsewhere}}
          typo: {run: pwd, with: {cdw: sub}}
          twice: {run: pwd, with: {run: ls}}
          fine: {run: pwd, with: {cwd: sub}}
          later: {run: pwd, with: {cwd: "{{ mission.id }}/../.."}}
    """})
    hint = "(paths are relative to the workspace root)"
    assert validate(root) == [
        f"missions/cwd.yaml:4:31: error: task 'abs': with.cwd '/tmp' is absolute {hint}",
        f"missions/cwd.yaml:5:45: error: task 'up': with.cwd '../elsewhere' climbs out of the workspace with '..' {hint}",
        "missions/cwd.yaml:6:26: error: worker 'shell' in task 'typo': with must not contain {'cdw'} properties",
        "missions/cwd.yaml:7:33: error: task 'twice' gives its script twice, as run and as with.run",
    ]
