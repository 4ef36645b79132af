"""A NUL byte cannot reach a process: refused in inputs, located in files, a clear task failure at run time."""

from __future__ import annotations

from pathlib import Path

from .helpers import Workspace, statuses, task

ECHO = """
    mission: echo
    objective: inputs reach a script
    inputs:
      word: {type: string, default: hi}
      nested: {type: object, default: {}}
    tasks:
      say: {run: "echo {{ inputs.word }} > said.txt"}
    """


def test_an_inputs_file_value_with_a_nul_byte_is_a_located_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/echo.yaml", ECHO)
    ws.write("in.yaml", 'word: "a\\0b"\nnested: {list: [1, "z\\0"]}\n')
    result = ws.nx("run", "echo", "--inputs-file", "in.yaml")
    assert result.rc == 2
    hint = "(no script, argument or environment variable can hold one)"
    assert result.err.splitlines() == [
        f"in.yaml:1:7: error: input 'word' contains a NUL byte {hint}",
        f"in.yaml:2:20: error: input 'nested' contains a NUL byte {hint}",
    ]
    assert not ws.exists("said.txt") and not ws.state.exists()


def test_a_nul_byte_given_with_dash_i_is_a_usage_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/echo.yaml", ECHO)
    result = ws.nx("run", "echo", "-i", 'word="a\\0b"')
    assert (result.rc, result.err) == (
        2, ("error: -i word: the value contains a NUL byte, which no script, argument or environment "
            "variable can hold\n"))
    assert not ws.exists("said.txt") and not ws.state.exists()


def test_a_nul_byte_written_in_a_mission_is_located_by_validate(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/lit.yaml", r"""
        mission: lit
        objective: NUL bytes written in the file
        inputs:
          x: {type: string, default: "a\0b"}
        env: {G: "g\0"}
        tasks:
          script: {run: "echo a\0b"}
          via-input: {run: "echo {{ inputs.x }}"}
          env: {run: "true", env: {V: "x\0"}}
          cwd: {worker: shell, with: {run: "true", cwd: "a\0b"}}
          sources: {run: "true", sources: ["a\0b"]}
        """)
    result = ws.nx("validate")
    assert result.rc == 1
    assert result.err.splitlines()[:-1] == [
        "missions/lit.yaml:5:10: error: the mission's env.G contains a NUL byte",
        "missions/lit.yaml:7:17: error: task 'script': its script contains a NUL byte",
        "missions/lit.yaml:8:20: error: task 'via-input': its script contains a NUL byte (from a template value)",
        "missions/lit.yaml:9:31: error: task 'env': env.V contains a NUL byte",
        "missions/lit.yaml:10:49: error: task 'cwd': with.cwd 'a\\x00b' contains a NUL byte",
        "missions/lit.yaml:11:36: error: task 'sources': sources pattern 'a\\x00b' contains a NUL byte",
    ]
    assert ws.nx("run", "lit").rc == 2
    assert not ws.state.exists()


RUNTIME = """
    mission: fed
    objective: an upstream output holding a NUL byte feeds later tasks
    tasks:
      src:
        run: |
          printf 'a\\0b'
          printf 'k=a\\0b\\n' >> "$NEXUSMON_OUTPUT"
      script: {needs: [src], run: "echo {{ tasks.src.outputs.stdout }}"}
      env: {needs: [src], env: {V: "{{ tasks.src.outputs.k }}"}, run: 'echo "$V"'}
      with-run: {needs: [src], worker: shell, with: {run: "echo {{ tasks.src.outputs.k }}"}}
      cwd: {needs: [src], worker: shell, with: {run: pwd, cwd: "{{ tasks.src.outputs.stdout }}"}}
      file: {needs: [src], worker: template, with: {text: hi, path: "{{ tasks.src.outputs.stdout }}"}}
      child: {needs: [src], worker: mission, with: {mission: "{{ tasks.src.outputs.stdout }}"}}
      text: {needs: [src], worker: template, with: {text: "{{ tasks.src.outputs.stdout }}", path: out.txt}}
    """


def test_a_nul_byte_from_an_upstream_output_fails_the_task_clearly(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/fed.yaml", RUNTIME)
    doc = ws.run("fed", "--keep-going", rc=1)
    errors = {t["id"]: t["error"] for t in doc["tasks"] if t["status"] == "failed"}
    assert errors == {
        "script": "missions/fed.yaml:8:31: task 'script': its script contains a NUL byte (from a template value)",
        "env": "missions/fed.yaml:9:32: task 'env': env.V contains a NUL byte (from a template value)",
        "with-run": "missions/fed.yaml:10:55: task 'with-run': its script contains a NUL byte (from a template value)",
        "cwd": "missions/fed.yaml:11:60: task 'cwd': with.cwd contains a NUL byte (from a template value)",
        "file": "path 'a\\x00b' contains a NUL byte",
        "child": "mission 'a\\x00b' contains a NUL byte",
    }
    assert (task(doc, "src")["status"], task(doc, "text")["status"]) == ("succeeded", "succeeded")
    assert ws.read("out.txt") == "a\0b"  # a file's text may hold one
    assert task(doc, "script")["attempts"] == 0
    shown = ws.show()
    assert statuses(shown) == statuses(doc) and shown["status"] == "failed"
    ws.audit_verify()
