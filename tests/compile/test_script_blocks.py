"""`{% set %}` blocks and macros in `run` scripts: their text is quoted once, where values were
interpolated into it, never again where it is used; hostile inputs stay one literal word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HOSTILE = ['"; touch pwned #', "$(touch pwned)", "`touch pwned`", "a\ntouch pwned\nb", "it's", "-n"]

WORDS = """
mission: words
objective: print each word the script receives
inputs:
  x: {type: string}
tasks:
  show:
    run: |
      {% set block %}{{ inputs.x }}{% endset %}
      {% set labelled %}--value={{ inputs.x }}{% endset %}
      {% macro word(v) %}{{ v }}{% endmacro %}
      {% macro wrap() %}+{{ caller() }}+{% endmacro %}
      {% set from_macro = word(inputs.x) %}
      printf '%s\\0' {{ inputs.x }} {{ block }} {{ labelled }} {{ word(inputs.x) }} {{ word(block) }} {{ from_macro }} {% call wrap() %}{{ inputs.x }}{% endcall %} > words.bin
"""


def received(root: Path) -> list[str]:
    return (root / "words.bin").read_text(encoding="utf-8").split("\0")[:-1]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_input_reaches_the_script_as_one_literal_word_through_sets_and_macros(
    make_workspace, cli, tmp_path, value: str,
) -> None:
    root = make_workspace(tmp_path, {"missions/words.yaml": WORDS, "in.json": json.dumps({"x": value})})
    code, _, err = cli(["run", "words", "--inputs-file", "in.json"], root)
    assert code == 0, err
    assert received(root) == [value, value, f"--value={value}", value, value, value, f"+{value}+"]
    assert not (root / "pwned").exists()


def test_plan_shows_each_value_quoted_once(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/words.yaml": WORDS})
    script = plan_json(root, "words", "-i", "x=a b")["tasks"][0]["params"]["run"]
    assert script.splitlines()[-1] == (
        "printf '%s\\0' 'a b' 'a b' --value='a b' 'a b' 'a b' 'a b' +'a b'+ > words.bin")


def test_text_made_from_a_block_is_quoted_again(make_workspace, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: a filter or a slice makes new text
        inputs:
          x: {type: string, default: "a b"}
        tasks:
          t:
            run: "{% set b %}{{ inputs.x }}{% endset %}{% set u | upper %}{{ inputs.x }}{% endset %}echo {{ u }} {{ b | trim }} {{ b[1:] }}"
        """})
    assert plan_json(root, "m")["tasks"][0]["params"]["run"] == (
        "echo ''\"'\"'A B'\"'\"'' ''\"'\"'a b'\"'\"'' 'a b'\"'\"''")


def test_autoescape_is_refused_in_a_script(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/e.yaml": """
        mission: e
        objective: HTML escaping would undo shell quoting
        inputs:
          x: {type: string, default: "a\\ntouch pwned"}
        tasks:
          t:
            run: "{% autoescape true %}echo {{ inputs.x }}{% endautoescape %}"
          fine:
            worker: template
            with: {path: e.html, text: "{% autoescape true %}{{ '<b>' }}{% endautoescape %}"}
        """})
    assert validate(root) == [(
        "missions/e.yaml:7:10: error: template syntax error: {% autoescape %} cannot be used in a run script "
        "(it would undo shell quoting)")]


def test_a_filter_block_is_refused_in_a_script(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/f.yaml": """
        mission: f
        objective: a filter over a block could strip the quotes of the values in it
        inputs:
          x: {type: string, default: "a; touch pwned"}
        tasks:
          t:
            run: "echo {% filter replace(\\"'\\", '') %}{{ inputs.x }}{% endfilter %}"
          fine:
            worker: template
            with: {path: f.txt, text: "{% filter upper %}{{ inputs.x }}{% endfilter %}"}
        """})
    assert validate(root) == [(
        "missions/f.yaml:7:10: error: template syntax error: {% filter %} cannot be used in a run script "
        "(it would rewrite quoted values); filter the value instead ({{ name | upper }}), or a {% set %} block")]


def test_a_filtered_set_block_stays_one_word(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/w.yaml": """
        mission: w
        objective: the filter runs on the block's text, which is quoted where it is used
        inputs:
          x: {type: string, default: "a; touch pwned"}
        tasks:
          t:
            run: "{% set y | replace(\\"'\\", '') %}{{ inputs.x }}{% endset %}printf '%s\\\\0' {{ y }} > words.bin"
        """})
    code, _, err = cli(["run", "w"], root)
    assert code == 0, err
    assert received(root) == ["a; touch pwned"]
    assert not (root / "pwned").exists()


@pytest.mark.parametrize("value", HOSTILE)
def test_a_shell_worker_script_given_in_with_quotes_values_like_run(
    make_workspace, cli, tmp_path, value: str,
) -> None:
    mission = ("mission: w\nobjective: the long form of run\ninputs: {x: {type: string}}\ntasks:\n"
               "  show: {worker: shell, with: {run: \"printf '%s\\\\0' {{ inputs.x }} > words.bin\"}}\n")
    root = make_workspace(tmp_path, {"missions/w.yaml": mission, "in.json": json.dumps({"x": value})})
    code, _, err = cli(["run", "w", "--inputs-file", "in.json"], root)
    assert code == 0, err
    assert received(root) == [value]
    assert not (root / "pwned").exists()
