"""A value interpolated inside quotes or a here-document stays literal there: real scripts, real bash."""

from __future__ import annotations

from pathlib import Path

from .helpers import Workspace, task

HOSTILE = "$(touch pwned1) `touch pwned2` \"dq\" 'sq' \\n $HOME ; touch pwned3 #"

QUOTED = """
    mission: q
    objective: values inside quotes and here-documents
    inputs: {s: {type: string}}
    tasks:
      dq: {run: 'printf "%s\\n" "v={{ inputs.s }}" > dq.txt'}
      sq: {run: "printf '%s\\\\n' 'v={{ inputs.s }}' > sq.txt"}
      ansi: {run: "printf '%s\\\\n' $'v={{ inputs.s }}' > ansi.txt"}
      nested: {run: 'printf "%s\\n" "$(printf "%s" "v={{ inputs.s }}")" > nested.txt'}
      heredoc:
        run: |
          cat > heredoc.txt <<EOF
          v={{ inputs.s }}
          EOF
      bare: {run: 'printf "%s\\n" v={{ inputs.s }} > bare.txt'}
    """


def test_a_hostile_value_stays_literal_in_every_quoting_context(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/q.yaml", QUOTED)
    doc = ws.run("q", "-i", f"s={HOSTILE}")
    assert {t["id"]: t["status"] for t in doc["tasks"]} == dict.fromkeys(
        ("dq", "sq", "ansi", "nested", "heredoc", "bare"), "succeeded")
    for name in ("dq", "sq", "ansi", "nested", "heredoc", "bare"):
        assert ws.read(f"{name}.txt") == f"v={HOSTILE}\n", name
    assert not any(ws.exists(f"pwned{i}") for i in (1, 2, 3))


def test_a_value_in_backticks_or_a_comment_is_a_located_validation_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/r.yaml", """
        mission: r
        objective: places no quoting protects
        inputs: {s: {type: string, default: x}}
        tasks:
          bq: {run: 'echo `echo {{ inputs.s }}`'}
          comment:
            run: |
              echo start
              # deploys {{ inputs.s }}
          opted-out: {run: 'echo "{{ inputs.s | raw }}" # {{ inputs.s | raw }}'}
        """)
    result = ws.nx("validate")
    assert result.rc == 1
    assert result.err.splitlines()[:2] == [
        ("missions/r.yaml:5:13: error: task 'bq': {{ inputs.s }} sits inside backticks (script line 1), "
        "where no quoting keeps a value literal: a value such as $(touch pwned) could run "
        "(use $( ) instead of backticks; `| raw` opts out)"),
        ("missions/r.yaml:9:7: error: task 'comment': {{ inputs.s }} sits inside a # comment "
        "(script line 2), where no quoting keeps a value literal: a value such as $(touch pwned) "
        "could run (move it out of the comment; `| raw` opts out)"),
    ]


def test_plan_shows_the_escaped_script(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/q.yaml", QUOTED)
    doc = ws.nx("plan", "q", "-i", "s=a\"$b", "--format", "json").json()
    assert task(doc, "dq")["params"]["run"] == 'printf "%s\\n" "v=a\\"\\$b" > dq.txt'
    assert task(doc, "bare")["params"]["run"] == "printf \"%s\\n\" v='a\"$b' > bare.txt"
