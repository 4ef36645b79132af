"""Runes at their limits: outputs checked like tasks, nested fan-out refused before it is
built, rune problems reported for the missions that call them, and no follow-on errors."""

from __future__ import annotations

import json
import time

from cli_runner import run_cli
from conftest import plan_document, validate_errors, write_workspace

CALLER = """
mission: m
objective: read a rune's outputs
tasks:
  call: {uses: r}
  after: {needs: [call], run: "echo {{ tasks.call.outputs.a }}"}
"""


def rune_with_outputs(outputs: str) -> str:
    return ("rune: r\nversion: 1\ninputs:\n  who: {type: string, default: me}\n"
            "tasks:\n  x: {run: echo x}\n  m: {matrix: {os: [linux, mac]}, needs: [x], run: echo m}\n"
            "outputs:\n  a: done\n" + outputs)


# -- finding 1: outputs are templates, checked at their place in the rune file -------------

def test_rune_outputs_are_checked_like_task_templates(tmp_path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": CALLER, "runes/r.yaml": rune_with_outputs(
        '  syntax: "{{ oops"\n'
        '  task: "{{ tasks.nosuch.outputs.x }} {{ tasks.xx.status }}"\n'
        '  input: "{{ inputs.nope }}"\n')})
    lines = [
        ("runes/r.yaml:10:11: error: template syntax error: unexpected end of template, "
         "expected 'end of print statement'."),
        "runes/r.yaml:11:9: error: output 'task' of rune r@1 reads tasks.nosuch, but there is no task 'nosuch'",
        ("runes/r.yaml:11:9: error: output 'task' of rune r@1 reads tasks.xx, but there is no task 'xx'"
         " (did you mean 'x'?)"),
        "runes/r.yaml:12:10: error: undefined name 'inputs.nope'",
    ]
    assert validate_errors(root) == lines
    assert validate_errors(root, "missions/m.yaml") == lines
    result = run_cli(["plan", "m"], root)
    assert (result.exit_code, result.stderr.splitlines()) == (2, lines)


def test_a_rune_that_no_mission_calls_is_checked_too(tmp_path) -> None:
    root = write_workspace(tmp_path, {"runes/r.yaml": rune_with_outputs('  b: "{{ inputs.nope }}"\n')})
    [error] = validate_errors(root)  # through a stand-in call: no mission is named
    assert error.startswith("runes/r.yaml:") and "undefined name 'inputs.nope'" in error, error
    assert validate_errors(root, "runes/r.yaml") == [error]


def test_outputs_may_read_inputs_env_own_tasks_matrix_expansions_and_inner_calls(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        "runes/inner.yaml": "rune: inner\nversion: 1\ntasks:\n  say: {run: echo said}\n"
                            "outputs:\n  said: '{{ tasks.say.outputs.stdout }}'\n",
        "runes/r.yaml": "rune: r\nversion: 1\ninputs:\n  who: {type: string, default: me}\ntasks:\n"
                        "  sub: {uses: inner}\n  x: {run: echo x}\n  m: {matrix: {os: [linux]}, run: echo m}\n"
                        "outputs:\n  a: \"{{ inputs.who }}/{{ env.E }}/{{ tasks.x.outputs.stdout }}/"
                        "{{ tasks['m[linux]'].status }}/{{ tasks.sub.outputs.said }}\"\n",
        "missions/m.yaml": CALLER.replace("tasks:\n", "env: {E: e}\ntasks:\n"),
    })
    assert validate_errors(root) == []
    tasks = {t["id"]: t for t in plan_document(root, "m")["tasks"]}
    assert tasks["after"]["params"] == {"run": "echo '<tasks.call.outputs.a>'"}
    result = run_cli(["run", "m", "--format", "json"], root)
    assert result.exit_code == 0, result
    outputs = {t["id"]: t["outputs"] for t in json.loads(result.stdout)["tasks"]}
    # the rune's first task is a call: outputs still render in the rune's own scope
    assert outputs["after"]["stdout"] == "me/e/x/succeeded/said"


def test_an_undeclared_output_of_an_inner_call_is_located_in_the_outer_rune(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        "runes/inner.yaml": "rune: inner\nversion: 1\ntasks:\n  say: {run: echo}\noutputs:\n  said: ok\n",
        "runes/r.yaml": "rune: r\nversion: 1\ntasks:\n  sub: {uses: inner}\n"
                        "outputs:\n  a: '{{ tasks.sub.outputs.sayd }}'\n",
        "missions/m.yaml": CALLER,
    })
    assert validate_errors(root) == ["runes/r.yaml:6:6: error: undefined name 'tasks.sub.outputs.sayd' (did you mean 'tasks.sub.outputs.said'?)"]


# -- finding 2: nested fan-out is counted, never walked ------------------------------------

def fan_out(depth: int, width: int = 10) -> dict[str, str]:
    files = {"runes/r0.yaml": "rune: r0\nversion: 1\ntasks: {x: {worker: noop}}\n"}
    for i in range(1, depth + 1):
        calls = "".join(f"  c{j}: {{uses: r{i - 1}}}\n" for j in range(width))
        files[f"runes/r{i}.yaml"] = f"rune: r{i}\nversion: 1\ntasks:\n{calls}"
    return files


def test_nested_fan_out_is_refused_at_the_call_site_before_it_is_built(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        **fan_out(8),
        "missions/capped.yaml": "mission: capped\nobjective: x\nconstraints: {max_steps: 10}\n"
                                "tasks:\n  ok: {uses: r1}\n  a: {uses: r7}\n",
        "missions/open.yaml": "mission: open\nobjective: x\ntasks:\n  b: {uses: r8}\n",
    })
    started = time.monotonic()
    assert validate_errors(root) == [
        ("missions/capped.yaml:6:13: error: task 'a' calls rune r7@1, which expands to 10000000 tasks, "
         "more than max_steps 10"),
        ("missions/open.yaml:4:13: error: task 'b' calls rune r8@1, which expands to 100000000 tasks, "
         "more than 100000 (set constraints.max_steps to allow more)"),
    ]
    result = run_cli(["plan", "capped"], root)
    assert result.exit_code == 2
    assert time.monotonic() - started < 1.5


def test_absurd_fan_out_saturates_instead_of_growing_without_end(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        **fan_out(40),
        "missions/m.yaml": "mission: m\nobjective: x\ntasks:\n  b: {uses: r40}\n",
    })
    assert validate_errors(root) == [
        ("missions/m.yaml:4:13: error: task 'b' calls rune r40@1, which expands to 1000000000000000000 "
         "or more tasks, more than 100000 (set constraints.max_steps to allow more)")]


def test_calls_that_fit_alone_but_not_together_name_the_mission_limit(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        **fan_out(2),
        "missions/m.yaml": "mission: m\nobjective: x\nconstraints: {max_steps: 150}\n"
                           "tasks:\n  a: {uses: r2}\n  b: {uses: r2}\n",
    })
    assert validate_errors(root) == [
        "missions/m.yaml:3:26: error: mission expands to 200 tasks, more than max_steps 150"]


def test_fan_out_within_the_limit_is_expanded(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        **fan_out(2, width=3),
        "missions/m.yaml": "mission: m\nobjective: x\nconstraints: {max_steps: 9}\ntasks:\n  a: {uses: r2}\n",
    })
    ids = [t["id"] for t in plan_document(root, "m")["tasks"]]
    assert len(ids) == 9 and "a.c2.c1.x" in ids


# -- finding 7: a mission's runes are part of the mission -----------------------------------

def test_validating_a_mission_file_reports_the_runes_it_calls(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        "runes/self.yaml": "rune: selfy\nversion: 1\ntasks:\n  y: {uses: selfy@1}\n",
        "runes/brk.yaml": "rune: brk\nversion: 1\ntasks:\n  x: {run: \"echo {{ inputs.nope }}\"}\n",
        "runes/typo.yaml": "rune: typo\nversion: 1\ntasks:\n  x: {run: echo, timout: 3}\n",
        "runes/mid.yaml": "rune: mid\nversion: 1\ntasks:\n  t: {uses: typo}\n",
        "runes/unused.yaml": "rune: unused\nversion: 1\ntasks:\n  x: {run: echo, timout: 3}\n",
        "missions/a.yaml": "mission: a\nobjective: x\ntasks:\n  e: {uses: selfy}\n",
        "missions/b.yaml": "mission: b\nobjective: x\ntasks:\n  e: {uses: brk}\n",
        "missions/c.yaml": "mission: c\nobjective: x\ntasks:\n  e: {uses: mid}\n",
    })
    assert validate_errors(root, "missions/a.yaml") == [
        "missions/a.yaml:4:13: error: task 'e' calls rune selfy@1, which enters a rune cycle: selfy@1 -> selfy@1",
        "runes/self.yaml:4:13: error: rune cycle: selfy@1 -> selfy@1",
    ]
    assert validate_errors(root, "missions/b.yaml") == ["runes/brk.yaml:4:12: error: undefined name 'inputs.nope'"]
    assert validate_errors(root, "missions/c.yaml") == [
        "runes/typo.yaml:4:18: error: unknown key 'timout' in task 'x' (did you mean 'timeout'?)"]


def test_a_cycle_entered_through_another_rune_names_the_mission_call(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        "runes/top.yaml": "rune: top\nversion: 1\ntasks:\n  t: {uses: r1}\n",
        "runes/r1.yaml": "rune: r1\nversion: 1\ntasks:\n  x: {uses: r2}\n",
        "runes/r2.yaml": "rune: r2\nversion: 1\ntasks:\n  y: {uses: r1@1}\n",
        "missions/m.yaml": "mission: m\nobjective: x\ntasks:\n  go: {uses: top}\n",
    })
    assert validate_errors(root, "missions/m.yaml") == [
        "missions/m.yaml:4:14: error: task 'go' calls rune top@1, which enters a rune cycle: r1@1 -> r2@1 -> r1@1",
        "runes/r2.yaml:4:13: error: rune cycle: r1@1 -> r2@1 -> r1@1",
    ]


# -- finding 10: one mistake, one error ------------------------------------------------------

def test_a_failed_rune_call_adds_no_errors_to_its_dependents(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        "runes/r.yaml": "rune: r\nversion: 1\ntasks:\n  x: {run: echo, timout: 3}\n",
        "missions/m.yaml": """
            mission: m
            objective: x
            tasks:
              call: {uses: r}
              after: {needs: [call], run: "echo {{ tasks.call.outputs.a }}"}
              other: {uses: nosuch}
              later: {needs: other, run: "echo {{ tasks.other.status }}"}
        """,
    })
    assert validate_errors(root) == [
        "missions/m.yaml:6:17: error: unknown rune 'nosuch'",
        "runes/r.yaml:4:18: error: unknown key 'timout' in task 'x' (did you mean 'timeout'?)",
    ]


def test_a_failed_env_entry_adds_no_undefined_names(tmp_path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: x
        env: {B: "{{ inputs.nope }}"}
        tasks:
          t: {run: "echo {{ env.B }}"}
    """})
    assert validate_errors(root) == ["missions/m.yaml:3:10: error: undefined name 'inputs.nope'"]


def test_a_newer_version_that_failed_to_load_is_reported_for_its_callers(tmp_path) -> None:
    root = write_workspace(tmp_path, {
        "runes/r1.yaml": "rune: r\nversion: 1\ntasks:\n  x: {run: echo}\n",
        "runes/r2.yaml": "rune: r\nversion: 2\ntasks:\n  x: {run: echo, timout: 3}\n",
        "missions/m.yaml": "mission: m\nobjective: x\ntasks:\n  e: {uses: r}\n",
    })
    assert validate_errors(root, "missions/m.yaml") == [
        "runes/r2.yaml:4:18: error: unknown key 'timout' in task 'x' (did you mean 'timeout'?)"]
