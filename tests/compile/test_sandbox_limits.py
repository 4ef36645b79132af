"""Templates cannot exhaust memory or CPU: each hostile template is a located error from `validate`,
`plan` and `run`, found quickly; ordinary templates still render. Whole mappings render as JSON."""

from __future__ import annotations

import json

import pytest

from nexusmon.compile.limits import MAX_VALUE, TIME_BUDGET

REFUSED = "missions/h.yaml:5:10: error: template refused by the sandbox: "
TOO_BIG = f"would make a value larger than {MAX_VALUE} characters or items"
DOUBLING = "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = EXPR %}{% endfor %}{{ ns.s|length }}"
REPLACES = "'a'" + ".replace('', 'aaaaaaaaaa')" * 8


def mission(template: str) -> str:
    """A one-task mission whose `run` is ``template`` (at line 5, column 10)."""
    assert '"' not in template and "\\" not in template
    return f'mission: h\nobjective: limits\ntasks:\n  f:\n    run: "{template}"\n'


HOSTILE = [
    pytest.param(DOUBLING.replace("EXPR", "ns.s ~ ns.s"), f"'~' {TOO_BIG}", id="concat-doubling"),
    pytest.param(DOUBLING.replace("EXPR", "ns.s + ns.s"), f"'+' {TOO_BIG}", id="plus-doubling"),
    pytest.param(DOUBLING.replace("EXPR", "'%(a)s%(a)s' % {'a': ns.s}"), f"'%' {TOO_BIG}", id="percent-doubling"),
    pytest.param(DOUBLING.replace("EXPR", "'{0}{0}'.format(ns.s)"), f"str.format {TOO_BIG}", id="format-doubling"),
    pytest.param(DOUBLING.replace("EXPR", "['a', 'b', 'c']|join(ns.s)"), f"'join' {TOO_BIG}", id="join-filter-doubling"),
    pytest.param(DOUBLING.replace("EXPR", "ns.s.join(['a', 'b', 'c'])"), f"str.join {TOO_BIG}", id="str-join-doubling"),
    pytest.param(DOUBLING.replace("EXPR", "[ns.s, ns.s]|join"), f"this literal {TOO_BIG}", id="literal-doubling"),
    pytest.param("{{ " + REPLACES + " }}", f"str.replace {TOO_BIG}", id="str-replace"),
    pytest.param("{{ 'a'" + "|replace('', 'aaaaaaaaaa')" * 8 + " }}", f"'replace' {TOO_BIG}", id="replace-filter"),
    pytest.param("{{ '{:>10000000000}'.format('a') }}", f"a format width or precision over {MAX_VALUE} is refused",
                 id="format-width"),
    pytest.param("{{ '{:010000000000}'.format(1) }}", f"a format width or precision over {MAX_VALUE} is refused",
                 id="format-zero-padding"),
    pytest.param("{{ '{x:.10000000000}'.format_map({'x': 'a'}) }}",
                 f"a format width or precision over {MAX_VALUE} is refused", id="format-map-precision"),
    pytest.param("{{ '{:{}}'.format('a', 10000000000) }}", f"a format width or precision over {MAX_VALUE} is refused",
                 id="format-nested-width"),
    pytest.param("{{ '%*s' % (10000000000, 'a') }}",
                 f"10000000000 is larger than {MAX_VALUE}, the most a template may ask for", id="percent-star-width"),
    pytest.param("{{ '%*s'|format(10000000000, 'a') }}",
                 f"10000000000 is larger than {MAX_VALUE}, the most a template may ask for", id="format-filter-star"),
    pytest.param("{% for i in range(100000) %}{{ 'a' * 9999999 }}{% endfor %}", f"the rendered text {TOO_BIG}",
                 id="output-total"),
    pytest.param("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% else %}{{ 'a' * 1000000 }}{% endif %}"
                 "{% endmacro %}{{ f(40)|length }}", f"the rendered text {TOO_BIG}", id="macro-doubling"),
    pytest.param("{{ range(100000)|map('center', 9999999)|list|length }}", f"'list' {TOO_BIG}", id="lazy-map"),
    pytest.param("{{ ('a' * 5000000).translate({97: 'bbbbbbbbbb'}) }}", f"str.translate {TOO_BIG}", id="translate"),
    pytest.param("{{ ('a' * 5000000)|wordwrap(1, wrapstring='xxxxxxxxxx') }}", f"'wordwrap' {TOO_BIG}",
                 id="wordwrap"),
]


@pytest.mark.parametrize(("template", "reason"), HOSTILE)
def test_templates_that_would_exhaust_memory_are_located_errors(make_workspace, validate, tmp_path,
                                                                template, reason) -> None:
    root = make_workspace(tmp_path, {"missions/h.yaml": mission(template)})
    assert validate(root) == [REFUSED + reason]


def test_a_template_past_its_time_budget_is_a_located_error(make_workspace, validate, tmp_path) -> None:
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    root = make_workspace(tmp_path, {"missions/h.yaml": mission(template)})
    assert validate(root) == [REFUSED + f"template ran longer than {TIME_BUDGET:g} s"]


def test_lipsum_is_not_in_the_sandbox(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/h.yaml": mission("{{ lipsum(n=100000000) }}")})
    assert validate(root) == ["missions/h.yaml:5:10: error: undefined name 'lipsum'"]


def test_hostile_template_blocks_plan_with_exit_2(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/h.yaml": mission("{{ " + REPLACES + " }}")})
    code, out, err = cli(["plan", "h"], root)
    assert (code, out, err.splitlines()) == (2, "", [REFUSED + f"str.replace {TOO_BIG}"])


ORDINARY = [
    ("{{ 'ab' ~ 1 ~ [1, 2] }}", "ab1[1, 2]"),
    ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
    ("{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{{ twice('ab') }}", "abab"),
    ("{{ 'a-b'.replace('-', '+') }} {{ 'a-b'|replace('-', '') }} {{ ['x', 'y']|join(',') }}", "a+b ab x,y"),
    ("{{ '{:>4}|{:.2f}|{x}'.format('a', 1.5, x='y') }} {{ '%-3s|' % 'a' }}", "   a|1.50|y a  |"),
    ("{{ ('x' * 9999999)|length }} {{ ([0] * 3000000)|length }} {{ [1] + [2] }}", "9999999 3000000 [1, 2]"),
    ("{{ {'a': [1, true, none]} }} {{ ('a', 'b') }}", '{"a": [1, true, null]} ["a", "b"]'),
]


@pytest.mark.parametrize(("template", "text"), ORDINARY)
def test_ordinary_templates_still_render(make_workspace, plan_json, tmp_path, template, text) -> None:
    text_mission = f'mission: h\nobjective: limits\ntasks:\n  f: {{worker: template, with: {{path: o.txt, text: "{template}"}}}}\n'
    root = make_workspace(tmp_path, {"missions/h.yaml": text_mission})
    task = plan_json(root, "h")["tasks"][0]
    assert task["params"]["text"] == text


OUTPUTS = """
mission: m
objective: a whole outputs mapping
tasks:
  a: {run: echo a}
  b: {needs: [a], run: 'echo {{ tasks.a.outputs }} {{ tasks.a.artifacts }}'}
"""


def test_a_whole_mapping_renders_as_a_placeholder_in_plan_and_as_json_at_run_time(
    make_workspace, plan_json, cli, tmp_path,
) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": OUTPUTS})
    planned = plan_json(root, "m")["tasks"][1]["params"]
    assert planned == {"run": "echo '<tasks.a.outputs>' '<tasks.a.artifacts>'"}
    code, out, err = cli(["run", "m", "--format", "json"], root)
    assert code == 0, err
    assert json.loads(out)["tasks"][1]["outputs"]["stdout"] == '{"stdout": "a", "exit_code": 0} []'


def test_a_whole_task_view_renders_as_a_placeholder_in_plan_and_as_json_at_run_time(
    make_workspace, plan_json, cli, tmp_path,
) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": OUTPUTS.replace(
        "{{ tasks.a.outputs }} {{ tasks.a.artifacts }}", "{{ tasks.a }}")})
    assert plan_json(root, "m")["tasks"][1]["params"] == {"run": "echo '<tasks.a>'"}
    code, out, err = cli(["run", "m", "--format", "json"], root)
    assert code == 0, err
    assert json.loads(json.loads(out)["tasks"][1]["outputs"]["stdout"]) == {
        "outputs": {"stdout": "a", "exit_code": 0}, "status": "succeeded", "artifacts": []}
