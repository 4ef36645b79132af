"""`with` values that are one lone `{{ expr }}` keep the expression's type; anything else is text."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cli.test_keygen_approve import declare, keygen, nx, nx_json

RECORDER = """
import json

def record(**kwargs):
    return {"seen": json.dumps({k: [type(v).__name__, v] for k, v in sorted(kwargs.items())})}

def produce():
    return {"count": 3, "list": [1, "two"], "ratio": 0.5, "none": None, "ok": True, "text": "007"}
"""

TYPED = """
mission: typed
objective: lone expressions keep their type
inputs:
  dry: {type: boolean, default: false}
  n: {type: integer, default: 3}
  payload: {type: object, default: {a: [1, 2], b: null}}
env: {WIDTH: "{{ inputs.n }}"}
tasks:
  call:
    worker: python
    matrix: {size: [2]}
    env: {DRY: "{{ inputs.dry }}"}
    with:
      function: "recorder:record"
      flag: "{{ inputs.dry }}"
      spaced: "{{inputs.n}}"
      trimmed: "{{- inputs.n * 2.5 -}}"
      payload: "{{ inputs.payload }}"
      size: "{{ matrix.size }}"
      nested: {list: ["{{ inputs.n }}", "{{ none }}", "{{ [inputs.dry, 'x'] }}"]}
      mixed: "n={{ inputs.n }}"
      two: "{{ inputs.n }}{{ inputs.n }}"
      padded: " {{ inputs.n }}"
      literal: "3"
  script:
    run: echo {{ inputs.dry }} "$DRY" "$WIDTH"
    env: {DRY: "{{ inputs.dry }}"}
"""


def seen(doc: dict[str, Any], task: str) -> dict[str, list[Any]]:
    outputs = {t["id"]: t["outputs"] for t in doc["tasks"]}[task]
    found: dict[str, list[Any]] = json.loads(outputs["seen"])
    return found


@pytest.fixture
def typed(make_workspace, tmp_path: Path) -> Path:
    root: Path = make_workspace(tmp_path, {"missions/typed.yaml": TYPED, "recorder.py": RECORDER})
    return root


def test_a_python_function_receives_lone_expressions_with_their_type(typed: Path, cli) -> None:
    code, out, err = cli(["run", "typed", "--format", "json"], typed)
    assert code == 0, err
    assert seen(json.loads(out), "call[2]") == {
        "flag": ["bool", False],
        "spaced": ["int", 3],
        "trimmed": ["float", 7.5],
        "payload": ["dict", {"a": [1, 2], "b": None}],
        "size": ["int", 2],
        "nested": ["dict", {"list": [3, None, [False, "x"]]}],
        "mixed": ["str", "n=3"],
        "two": ["str", "33"],
        "padded": ["str", " 3"],
        "literal": ["str", "3"],
    }


def test_scripts_and_env_stay_text(typed: Path, cli, plan_json) -> None:
    planned = {t["id"]: t for t in plan_json(typed, "typed")["tasks"]}
    assert planned["script"]["params"] == {"run": "echo false \"$DRY\" \"$WIDTH\""}
    code, out, err = cli(["run", "typed", "--format", "json"], typed)
    assert code == 0, err
    outputs = {t["id"]: t["outputs"] for t in json.loads(out)["tasks"]}
    assert outputs["script"]["stdout"] == "false false 3"


def test_plan_shows_typed_params_and_digests_them_the_same_way_every_time(typed: Path, plan_json) -> None:
    first = {t["id"]: t for t in plan_json(typed, "typed")["tasks"]}["call[2]"]
    again = {t["id"]: t for t in plan_json(typed, "typed")["tasks"]}["call[2]"]
    assert first["params"]["flag"] is False
    assert first["params"]["payload"] == {"a": [1, 2], "b": None}
    assert first["params"]["nested"] == {"list": [3, None, [False, "x"]]}
    assert first["digest"] == again["digest"]
    other = {t["id"]: t for t in plan_json(typed, "typed", "-i", "dry=true")["tasks"]}["call[2]"]
    assert other["params"]["flag"] is True
    assert other["digest"] != first["digest"]


OUTPUTS = """
mission: outputs
objective: task outputs keep their type
tasks:
  make: {worker: python, with: {function: "recorder:produce"}}
  use:
    needs: [make]
    worker: python
    with:
      function: "recorder:record"
      count: "{{ tasks.make.outputs.count }}"
      list: "{{ tasks.make.outputs.list }}"
      ratio: "{{ tasks.make.outputs.ratio }}"
      none: "{{ tasks.make.outputs.none }}"
      ok: "{{ tasks.make.outputs.ok }}"
      text: "{{ tasks.make.outputs.text }}"
      all: "{{ tasks.make.outputs }}"
      status: "{{ tasks.make.status }}"
      said: "count {{ tasks.make.outputs.count }}"
"""


def test_task_outputs_arrive_as_they_were_stored(make_workspace, cli, plan_json, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/outputs.yaml": OUTPUTS, "recorder.py": RECORDER})
    params = plan_json(root, "outputs")["tasks"][1]["params"]
    assert params["count"] == "<tasks.make.outputs.count>"
    assert params["all"] == "<tasks.make.outputs>"
    code, out, err = cli(["run", "outputs", "--format", "json"], root)
    assert code == 0, err
    produced = {"count": 3, "list": [1, "two"], "ratio": 0.5, "none": None, "ok": True, "text": "007"}
    assert seen(json.loads(out), "use") == {
        "count": ["int", 3], "list": ["list", [1, "two"]], "ratio": ["float", 0.5], "none": ["NoneType", None],
        "ok": ["bool", True], "text": ["str", "007"], "all": ["dict", produced],
        "status": ["str", "succeeded"], "said": ["str", "count 3"],
    }


def test_a_lone_expression_that_fails_is_a_located_error(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/bad.yaml": """
        mission: bad
        objective: broken lone expressions
        inputs:
          n: {type: integer, default: 3}
        tasks:
          a:
            worker: noop
            with: {x: "{{ inputs.m }}", y: ["{{ [inputs.nope] }}"], z: "{{ inputs.n | nosuch }}"}
        """})
    assert validate(root) == [
        "missions/bad.yaml:8:15: error: undefined name 'inputs.m'",
        "missions/bad.yaml:8:37: error: undefined name 'inputs.nope'",
        "missions/bad.yaml:8:64: error: template syntax error: No filter named 'nosuch'.",
    ]


def test_the_template_worker_writes_any_value_as_text(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/w.yaml": """
        mission: w
        objective: typed values written as text
        inputs:
          n: {type: integer, default: 3}
          dry: {type: boolean, default: false}
          payload: {type: object, default: {a: [1, 2]}}
          name: {type: integer, default: 7}
        tasks:
          n: {worker: template, with: {text: "{{ inputs.n }}", path: n.txt}}
          dry: {worker: template, with: {text: "{{ inputs.dry }}", path: dry.txt}}
          payload: {worker: template, with: {text: "{{ inputs.payload }}", path: payload.txt}}
          path: {worker: template, with: {text: x, path: "{{ inputs.name }}"}}
        """})
    assert cli(["validate"], root).exit_code == 0
    code, _, err = cli(["run", "w"], root)
    assert code == 0, err
    written = {name: (root / name).read_text() for name in ("n.txt", "dry.txt", "payload.txt", "7")}
    assert written == {"n.txt": "3", "dry.txt": "false", "payload.txt": '{"a": [1, 2]}', "7": "x"}


RUNE = """
rune: count
version: 1
inputs:
  n: {type: integer}
  label: {type: string, default: none}
  loud: {type: boolean, default: false}
tasks:
  go: {run: "echo {{ inputs.n + 1 }} {{ inputs.label }} {{ inputs.loud }}"}
"""


def test_rune_inputs_take_typed_values_and_a_wrong_type_is_located(make_workspace, validate, plan_json,
                                                                   tmp_path) -> None:
    root = make_workspace(tmp_path, {"runes/count.yaml": RUNE, "missions/calls.yaml": """
        mission: calls
        objective: typed rune inputs
        inputs:
          n: {type: integer, default: 4}
          version: {type: number, default: 1.5}
        tasks:
          ok: {uses: count@1, with: {n: "{{ inputs.n }}", label: "{{ inputs.version }}", loud: "{{ inputs.n > 3 }}"}}
        """})
    assert plan_json(root, "calls")["tasks"][0]["params"] == {"run": "echo 5 1.5 true"}
    (root / "missions/wrong.yaml").write_text(
        "mission: wrong\nobjective: a string for an integer\ninputs:\n  s: {type: string, default: abc}\n"
        "tasks:\n  bad: {uses: count@1, with: {n: \"{{ inputs.s }}\"}}\n")
    assert validate(root, "missions/wrong.yaml") == [
        "missions/wrong.yaml:6:34: error: rune count@1: input 'n' expects integer, got 'abc'"]


PLUGIN = """
class Counter:
    name = "counter"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}

    async def execute(self, task):
        from nexusmon.workers.base import Result
        return Result(ok=True, outputs={"doubled": task.params["count"] * 2})
"""


def test_params_schema_checks_the_typed_value_and_waits_for_run_time_ones(make_workspace, validate, cli,
                                                                          tmp_path) -> None:
    root = make_workspace(tmp_path, {"plugins/counter.py": PLUGIN, "missions/p.yaml": """
        mission: p
        objective: typed plugin parameters
        inputs:
          n: {type: integer, default: 4}
        tasks:
          static: {worker: counter, with: {count: "{{ inputs.n }}"}}
          later: {needs: [static], worker: counter, with: {count: "{{ tasks.static.outputs.doubled }}"}}
        """})
    assert validate(root) == []
    code, out, err = cli(["run", "p", "--format", "json"], root)
    assert code == 0, err
    assert {t["id"]: t["outputs"] for t in json.loads(out)["tasks"]}["later"] == {"doubled": 16}
    (root / "missions/q.yaml").write_text(
        "mission: q\nobjective: text is not a count\ninputs:\n  n: {type: integer, default: 4}\n"
        "tasks:\n  t: {worker: counter, with: {count: \"n={{ inputs.n }}\"}}\n")
    assert validate(root, "missions/q.yaml") == [
        "missions/q.yaml:6:38: error: worker 'counter' in task 't': with.count must be integer"]


def test_a_typed_parameter_is_approved_and_run_as_planned(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "missions").mkdir(parents=True)
    (root / "recorder.py").write_text(RECORDER)
    (root / "missions/held.yaml").write_text(
        "mission: held\nobjective: a held task with typed parameters\ninputs:\n"
        "  payload: {type: object, default: {b: 2, a: [1, true]}}\n"
        "tasks:\n  ship:\n    rank: A\n    worker: python\n"
        "    with: {function: \"recorder:record\", payload: \"{{ inputs.payload }}\"}\n")
    declare(root, keygen(root))
    code, doc = nx_json(root, "run", "held")
    assert code == 3, doc
    run_id = str(doc["run_id"])
    assert nx(root, "approve", run_id, "ship").code == 0
    code, doc = nx_json(root, "resume", run_id)
    assert code == 0, doc
    assert seen(doc, "ship") == {"payload": ["dict", {"a": [1, True], "b": 2}]}


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"type": self.headers["Content-Type"], "body": body.decode()}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_http_worker_sends_a_lone_expression_as_a_json_object(make_workspace, cli, tmp_path,
                                                                  echo_url: str) -> None:
    root = make_workspace(tmp_path, {"missions/h.yaml": f"""
        mission: h
        objective: post a typed payload
        inputs:
          payload: {{type: object, default: {{name: x, tags: [1, 2], live: true}}}}
        tasks:
          post: {{worker: http, with: {{method: POST, url: "{echo_url}", json: "{{{{ inputs.payload }}}}"}}}}
        """})
    code, out, err = cli(["run", "h", "--format", "json"], root)
    assert code == 0, err
    outputs = json.loads(out)["tasks"][0]["outputs"]
    response = outputs.get("json") or json.loads(outputs["body"])
    assert json.loads(response["body"]) == {"name": "x", "tags": [1, 2], "live": True}


def test_a_child_mission_gets_typed_inputs(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "missions/child.yaml": """
            mission: child
            objective: typed inputs from a parent
            inputs:
              n: {type: integer}
              loud: {type: boolean}
            tasks:
              a: {run: "echo {{ inputs.n + 1 }} {{ inputs.loud }}"}
            """,
        "missions/parent.yaml": """
            mission: parent
            objective: pass typed inputs on
            inputs:
              n: {type: integer, default: 4}
            tasks:
              call: {worker: mission, with: {mission: child, inputs: {n: "{{ inputs.n }}", loud: "{{ inputs.n > 3 }}"}}}
            """,
    })
    code, out, err = cli(["run", "parent", "--format", "json"], root)
    assert code == 0, err
    assert json.loads(out)["tasks"][0]["outputs"]["tasks"] == {"a": {"stdout": "5 true", "exit_code": 0}}
