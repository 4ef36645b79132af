"""Templates: sandboxed, strict about names, shell-quoted in scripts, rendered at compile time
when nothing they read is only known at run time."""

from __future__ import annotations

import json

import pytest

from nexusmon.compile.templates import TemplateFailure, analyse, evaluate, render

# -- the template engine itself ---------------------------------------------------------


def test_values_in_scripts_are_shell_quoted() -> None:
    assert render("echo {{ x }}", {"x": "; touch pwned #"}, shell=True) == "echo '; touch pwned #'"


def test_raw_filter_opts_out_of_quoting() -> None:
    assert render("echo {{ x | raw }}", {"x": "a; b"}, shell=True) == "echo a; b"
    assert analyse("echo {{ x | raw }}").raw
    assert not analyse("echo {{ x }}").raw


@pytest.mark.parametrize(("source", "raw"), [
    ("echo {{ [x] | map('raw') | first }}", True),
    ("echo {{ [x] | map(inputs.how) | first }}", True),
    ("echo {% filter raw %}{{ x }}{% endfilter %}", True),
    ("echo {{ [x] | map('upper') | first }}", False),
    ("echo {{ xs | map(attribute='name') | join(' ') }}", False),
])
def test_raw_applied_indirectly_is_seen_too(source: str, raw: bool) -> None:
    assert analyse(source).raw is raw


def test_plain_fields_are_not_quoted_and_booleans_read_as_yaml() -> None:
    assert render("{{ a }} {{ b }} {{ c }}", {"a": "x y", "b": True, "c": None}) == "x y true "


def test_text_without_markers_is_returned_as_is() -> None:
    assert render("echo {x} $HOME", {}) == "echo {x} $HOME"


def test_undefined_names_fail_instead_of_rendering_empty() -> None:
    with pytest.raises(TemplateFailure) as info:
        render("echo {{ inputs.nme }}", {"inputs": {"name": "x"}})
    assert info.value.message == "undefined name 'inputs.nme' (did you mean 'inputs.name'?)"


def test_sandbox_refuses_dunder_access() -> None:
    with pytest.raises(TemplateFailure) as info:
        render("{{ ''.__class__ }}", {})
    assert info.value.message == (
        "template refused by the sandbox: access to attribute '__class__' of 'str' object is unsafe."
    )


@pytest.mark.parametrize("source", [
    "{{ 'a' * 10000000000 }}", "{{ 10000000000 * 'a' }}", "{{ [1] * 10**10 }}", "{{ 2 ** 99999999999 }}",
    "{{ '%3000000000s' % 'x' }}",
])
def test_sandbox_refuses_values_that_would_exhaust_memory(source: str) -> None:
    with pytest.raises(TemplateFailure, match=r"^template refused by the sandbox: '(\*\*?|%)' would make a value"):
        render(source, {})


@pytest.mark.parametrize(("source", "reason"), [
    ("{{ 'a'.ljust(3000000000) | length }}", "3000000000 is larger than 10000000"),
    ("{{ 'a'.zfill(3000000000) }}", "3000000000 is larger than 10000000"),
    ("{{ 'x' | indent(3000000000) }}", "3000000000 is larger than 10000000"),
    ("{{ 'x' | center(3000000000) }}", "3000000000 is larger than 10000000"),
    ("{{ '%3000000000s' | format('x') }}", "a format width over 10000000 is refused"),
])
def test_sandbox_refuses_padding_that_would_exhaust_memory(source: str, reason: str) -> None:
    with pytest.raises(TemplateFailure, match=f"^template refused by the sandbox: {reason}"):
        render(source, {})


def test_ordinary_padding_formatting_and_big_numbers_still_render() -> None:
    source = "{{ 'ab'.ljust(4) }}|{{ 'x' | indent(2, first=true) }}|{{ '%5s' % 'x' }}|{{ '{:,}'.format(123456789012) }}"
    assert render(source, {}) == "ab  |  x|    x|123,456,789,012"


def test_ordinary_arithmetic_and_repetition_still_render() -> None:
    assert render("{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 3 * 4 }} {{ [0] * 2 }}", {}) == "ababab 1024 12 [0, 0]"


def test_analysis_finds_task_reads_and_runtime_names() -> None:
    found = analyse("{{ tasks.build.outputs.stdout }} {{ tasks['lint'].status }} {{ secrets.TOKEN }}")
    assert found.tasks == frozenset({"build", "lint"})
    assert found.secrets and found.runtime
    assert analyse("{{ run.id }}").runtime
    assert not analyse("{{ inputs.tag }} {{ matrix.os }}").runtime


def test_if_expressions_evaluate_to_values() -> None:
    assert evaluate("not inputs.dry and matrix.os == 'linux'", {"inputs": {"dry": False}, "matrix": {"os": "linux"}})


# -- what users see ------------------------------------------------------------------------


def test_template_syntax_errors_are_located(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: syntax
        tasks:
          s1: {run: 'echo {{ inputs.x '}
          s2: {worker: noop, if: 'inputs.x ==='}
          s3: {run: 'echo {% if %}'}
    """})
    assert validate(root) == [
        ("missions/a.yaml:4:13: error: template syntax error: unexpected end of template, "
        "expected 'end of print statement'."),
        "missions/a.yaml:5:26: error: template syntax error: unexpected '='",
        "missions/a.yaml:6:13: error: template syntax error: Expected an expression, got 'end of statement block'",
    ]


def test_errors_in_a_literal_block_script_are_located_at_their_own_line(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: errors deep in scripts
        inputs:
          name: {type: string, default: world}
        tasks:
          syntax:
            run: |
              echo one
              echo {% if %}
          undefined:
            run: |-  # a comment on the header line

              echo one
                echo {{ inputs.nme }}
          call:
            run: |
              echo {{ inputs.name | int(1, 2, 3, 4) }}
          folded:
            run: >
              echo one
              echo {{ inputs.nme }}
    """})
    assert validate(root) == [
        "missions/a.yaml:9:7: error: template syntax error: Expected an expression, got 'end of statement block'",
        "missions/a.yaml:14:9: error: undefined name 'inputs.nme' (did you mean 'inputs.name'?)",
        "missions/a.yaml:17:7: error: template error: do_int() takes from 1 to 3 positional arguments but 5 were given",
        # a folded block's lines are not the file's: located at the block, as a quoted string is
        "missions/a.yaml:19:10: error: undefined name 'inputs.nme' (did you mean 'inputs.name'?)",
    ]


def test_a_run_time_template_error_in_a_block_names_its_line(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/r.yaml": """
        mission: r
        objective: an output that is not there
        tasks:
          a: {run: echo x=1 >> $NEXUSMON_OUTPUT}
          b:
            needs: [a]
            run: |
              echo one
              echo {{ tasks.a.outputs.y }}
    """})
    code, out, _ = cli(["run", "r", "--format", "json"], root)
    errors = {t["id"]: t["error"] for t in json.loads(out)["tasks"]}
    assert (code, errors["b"]) == (1, "missions/r.yaml:9:7: undefined name 'tasks.a.outputs.y'")


def test_undefined_names_are_located_in_every_templated_field(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: strict names
        inputs:
          name: {type: string, default: world}
        env: {GREETING: '{{ inputs.greeting }}'}
        tasks:
          in-run: {run: 'echo {{ inputs.nme }}'}
          top-level: {run: 'echo {{ foo }}'}
          in-if: {worker: noop, if: inputs.missing}
          in-with: {worker: template, with: {text: '{{ bar.baz }}', path: out.txt}}
          in-env: {worker: noop, env: {B: '{{ mission.nope }}'}}
          matrix-less: {run: 'echo {{ matrix.os }}'}
    """})
    assert validate(root) == [
        "missions/a.yaml:5:17: error: undefined name 'inputs.greeting'",
        "missions/a.yaml:7:17: error: undefined name 'inputs.nme' (did you mean 'inputs.name'?)",
        "missions/a.yaml:8:20: error: undefined name 'foo'",
        "missions/a.yaml:9:29: error: undefined name 'inputs.missing'",
        "missions/a.yaml:10:44: error: undefined name 'bar'",
        "missions/a.yaml:11:35: error: undefined name 'mission.nope'",
        "missions/a.yaml:12:22: error: undefined name 'matrix.os'",
    ]


def test_sandbox_refuses_escapes_at_validate_time(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: sandbox
        tasks:
          a: {run: "echo {{ ''.__class__.__mro__[1].__subclasses__() }}"}
          b: {run: 'echo {{ cycler.__init__.__globals__ }}'}
          c: {run: 'echo {% for i in range(10**9) %}{% endfor %}'}
    """})
    assert validate(root) == [
        ("missions/a.yaml:4:12: error: template refused by the sandbox: "
        "access to attribute '__class__' of 'str' object is unsafe."),
        ("missions/a.yaml:5:12: error: template refused by the sandbox: "
        "access to attribute '__init__' of 'type' object is unsafe."),
        ("missions/a.yaml:6:12: error: template error: Range too big. "
        "The sandbox blocks ranges larger than MAX_RANGE (100000)."),
    ]


def test_sandbox_escape_blocks_plan_with_exit_2(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/a.yaml": """
        mission: a
        objective: sandbox
        tasks:
          a: {run: "echo {{ ''.__class__ }}"}
    """})
    code, out, err = cli(["plan", "a"], root)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        ("missions/a.yaml:4:12: error: template refused by the sandbox: "
        "access to attribute '__class__' of 'str' object is unsafe."),
    ]


STATIC = """
mission: greet
objective: static templates
category: library
inputs:
  name: {type: string, default: world}
  shout: {type: boolean, default: false}
env: {WHO: '{{ inputs.name }}'}
tasks:
  hello: {run: 'echo hello {{ inputs.name }} from {{ mission.id }}/{{ mission.category }} {{ env.WHO }}'}
  later: {needs: hello, run: 'echo {{ tasks.hello.outputs.stdout }} {{ run.id }}'}
  loud: {worker: noop, if: inputs.shout}
  note: {worker: template, with: {text: 'hi {{ inputs.name }}', path: 'out/{{ inputs.name }}.txt'}}
"""


def test_static_templates_render_at_compile_time(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/greet.yaml": STATIC})
    doc = plan_json(root, "greet", "-i", "name=Ada Lovelace")
    tasks = {t["id"]: t for t in doc["tasks"]}
    assert tasks["hello"]["params"] == {"run": "echo hello 'Ada Lovelace' from greet/library 'Ada Lovelace'"}
    assert tasks["note"]["params"] == {"text": "hi Ada Lovelace", "path": "out/Ada Lovelace.txt"}


def test_runtime_values_show_as_placeholders(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/greet.yaml": STATIC})
    later = plan_json(root, "greet")["tasks"][1]
    assert later["id"] == "later"
    assert later["params"] == {"run": "echo '<tasks.hello.outputs.stdout>' '<run.id>'"}


def test_static_if_is_decided_at_compile_time(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/greet.yaml": STATIC})
    quiet = {t["id"]: t for t in plan_json(root, "greet")["tasks"]}
    loud = {t["id"]: t for t in plan_json(root, "greet", "-i", "shout=true")["tasks"]}
    assert (quiet["loud"]["if"], quiet["loud"]["prediction"]) == (False, "skip")
    assert (loud["loud"]["if"], loud["loud"]["prediction"]) == (True, "run")


def test_hostile_input_is_one_quoted_word_in_the_plan(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/greet.yaml": STATIC})
    hello = plan_json(root, "greet", "-i", 'name="; touch pwned #')["tasks"][0]
    assert hello["params"]["run"] == (
        "echo hello '\"; touch pwned #' from greet/library '\"; touch pwned #'"
    )


HOSTILE = """
mission: hostile
objective: quoting at run time
inputs:
  value: {type: string}
tasks:
  quoted: {run: 'echo {{ inputs.value }}'}
  raw: {needs: quoted, run: 'echo {{ inputs.value | raw }}'}
"""


def test_hostile_input_reaches_the_script_as_one_literal_word(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/hostile.yaml": HOSTILE.replace("  raw:", "  # raw:")})
    value = '"; touch pwned #'
    code, out, err = cli(["run", "hostile", "-i", f"value={value}", "--format", "json"], root)
    assert code == 0, err
    outputs = json.loads(out)["tasks"][0]["outputs"]
    assert outputs["stdout"] == value
    assert not (root / "pwned").exists()
    assert not any(p.name == "pwned" for p in tmp_path.rglob("pwned"))


def test_raw_filter_really_interpolates_unquoted(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/hostile.yaml": HOSTILE})
    code, out, err = cli(["run", "hostile", "-i", "value=first; echo second > raw-ran.txt", "--format", "json"], root)
    assert code == 0, err
    tasks = {t["id"]: t for t in json.loads(out)["tasks"]}
    assert tasks["quoted"]["outputs"]["stdout"] == "first; echo second > raw-ran.txt"
    assert tasks["raw"]["outputs"]["stdout"] == "first"
    assert (root / "raw-ran.txt").read_text(encoding="utf-8") == "second\n"


def test_an_undefined_name_close_to_a_real_one_gets_a_hint(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/t.yaml": """
        mission: t
        objective: typos
        env: {LANG: C}
        secrets: [GITHUB_TOKEN]
        tasks:
          build: {run: echo}
          a: {run: "echo {{ env.LAGN }}"}
          b: {run: "echo {{ secrets.GITHUB_TOKN }}"}
          c: {run: "echo {{ inptus }}"}
          d: {run: "echo {{ nothing_like_it }}"}
        """})
    assert validate(root) == [
        "missions/t.yaml:7:12: error: undefined name 'env.LAGN' (did you mean 'env.LANG'?)",
        "missions/t.yaml:8:12: error: undefined name 'secrets.GITHUB_TOKN' (did you mean 'secrets.GITHUB_TOKEN'?)",
        "missions/t.yaml:9:12: error: undefined name 'inptus' (did you mean 'inputs'?)",
        "missions/t.yaml:10:12: error: undefined name 'nothing_like_it'",
    ]
