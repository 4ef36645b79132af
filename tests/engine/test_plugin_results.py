"""What a plugin returns: every text masked before it is kept or shown, every field checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import Workspace, task

SECRET = "nx-plugin-secret-7f3a"

LEAKY = """
from nexusmon.workers.base import Result


class Opaque:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return "opaque " + self.text


class Leaky:
    name = "leaky"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        s = task.env["NX_TOKEN"]
        print("printed " + s)
        return Result(
            ok=False,
            outputs={"key-" + s: "value-" + s, "nested": [s, {"deep": s}], "raw": s.encode(),
                     "object": Opaque(s), "tuple": (s,), 7: s},
            error="error " + s,
            log="log " + s,
            failure_kind="kind-" + s,
        )
"""

MISSION = """
    mission: leak
    objective: a plugin puts a secret in every field it returns
    secrets: [NX_TOKEN]
    tasks:
      spill: {worker: leaky}
    """


@pytest.fixture(scope="module")
def leaked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, dict[str, Any], str]]:
    ws = Workspace(tmp_path_factory.mktemp("plugin-leak"))
    ws.write("missions/leak.yaml", MISSION)
    ws.write("plugins/leaky.py", LEAKY)
    result = ws.nx("run", "leak", "--format", "json", env={"NX_TOKEN": SECRET})
    assert result.rc == 1, result.err
    yield ws, result.json(), result.out + result.err
    ws.cleanup()


def test_every_field_a_plugin_returns_is_masked_in_the_run_document(
    leaked: tuple[Workspace, dict[str, Any], str],
) -> None:
    ws, doc, printed = leaked
    assert SECRET not in printed
    spill = task(doc, "spill")
    assert spill["error"] == "error ***"
    assert spill["outputs"] == {
        "key-***": "value-***", "nested": ["***", {"deep": "***"}], "raw": "***",
        "object": "opaque ***", "tuple": ["***"], "7": "***",
    }
    shown = ws.nx("show", "last", "--format", "json")
    assert SECRET not in shown.out
    assert shown.json()["tasks"] == doc["tasks"]
    assert SECRET not in ws.nx("show", "last").out


def test_a_plugins_log_and_prints_are_masked(leaked: tuple[Workspace, dict[str, Any], str]) -> None:
    ws, _, _ = leaked
    logs = ws.nx("logs", "last", "spill")
    assert logs.rc == 0 and SECRET not in logs.out
    assert "printed ***" in logs.out and "log ***" in logs.out


def test_a_plugins_failure_kind_is_masked_where_omens_show_it(
    leaked: tuple[Workspace, dict[str, Any], str],
) -> None:
    ws, _, _ = leaked
    omens = ws.nx("omens", "--format", "json")
    assert omens.rc == 0 and SECRET not in omens.out
    assert [o["kind"] for o in omens.json()["omens"]] == ["kind-***"]
    assert ws.sql("SELECT failure_kind FROM tasks") == [("kind-***",)]


def test_the_audit_trail_and_the_ledger_file_never_hold_a_plugins_secret(
    leaked: tuple[Workspace, dict[str, Any], str],
) -> None:
    ws, _, _ = leaked
    trail = ws.nx("audit", "--format", "json")
    assert trail.rc == 0 and SECRET not in trail.out
    kinds = [e["payload"]["kind"] for e in json.loads(trail.out)["events"] if e["kind"] == "omen.counted"]
    assert kinds == ["kind-***"]
    stored = ws.state_bytes()
    assert b"error ***" in stored
    assert SECRET.encode() not in stored
    assert SECRET.encode("utf-16-le") not in stored
    ws.audit_verify()


# -- a Result with fields of the wrong types -------------------------------------

SLOPPY = """
import math

from nexusmon.workers.base import Result


class Loop(dict):
    pass


class Unprintable:
    def __str__(self):
        raise RuntimeError("no text")


def looping():
    outputs = Loop()
    outputs["self"] = outputs
    return outputs


CASES = {
    "ok": lambda: Result(ok="yes"),
    "outputs": lambda: Result(ok=True, outputs=["a"]),
    "error": lambda: Result(ok=False, error=404),
    "log": lambda: Result(ok=True, log=None),
    "kind": lambda: Result(ok=False, failure_kind=3),
    "cost": lambda: Result(ok=True, cost_usd="0.10"),
    "nan-cost": lambda: Result(ok=True, cost_usd=math.nan),
    "cpu": lambda: Result(ok=True, cpu_s=-1),
    "rss": lambda: Result(ok=True, peak_rss_kb=1.5),
    "looping": lambda: Result(ok=True, outputs=looping()),
    "unprintable": lambda: Result(ok=True, outputs={"x": Unprintable()}),
}


class Sloppy:
    name = "sloppy"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        return CASES[task.params["case"]]()
"""

BROKEN_RESULTS = {
    "ok": "ok is str, not true or false",
    "outputs": "outputs is list, not a mapping",
    "error": "error is int, not a string or None",
    "log": "log is NoneType, not a string",
    "kind": "failure_kind is int, not a string or None",
    "cost": "cost_usd is str, not a finite number >= 0",
    "nan-cost": "cost_usd is nan, not a finite number >= 0",
    "cpu": "cpu_s is -1, not a finite number >= 0",
    "rss": "peak_rss_kb is 1.5, not a whole number >= 0",
}


def test_a_result_with_fields_of_the_wrong_types_fails_its_task_not_the_run(tmp_path: Any) -> None:
    ws = Workspace(tmp_path)
    ws.write("plugins/sloppy.py", SLOPPY)
    cases = [*BROKEN_RESULTS, "looping", "unprintable"]
    tasks = "".join(f"  {case}: {{worker: sloppy, with: {{case: {case}}}}}\n" for case in cases)
    ws.write("missions/sloppy.yaml", f"mission: sloppy\nobjective: o\ntasks:\n{tasks}  fine: {{run: echo fine}}\n")
    doc = ws.run("sloppy", "--keep-going", rc=1)
    errors = {case: task(doc, case)["error"] for case in cases}
    assert errors == {
        **{case: f"worker 'sloppy' returned a Result whose {why}" for case, why in BROKEN_RESULTS.items()},
        "looping": "worker 'sloppy' returned outputs nested too deep to store (do they contain themselves?)",
        "unprintable": "worker 'sloppy' returned outputs that cannot be stored: RuntimeError: no text",
    }
    assert all(task(doc, case)["status"] == "failed" for case in cases)
    assert task(doc, "fine")["status"] == "succeeded"
    assert doc["status"] == "failed"
    ws.audit_verify()


def test_text_that_is_not_utf8_is_kept_as_escapes_and_the_run_ends(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("tools.py", """
        def names():
            return {"files": ["a\\udcffb"], "k\\udcfe": 1}

        def boom():
            raise RuntimeError("bad \\ud800 name")
        """)
    ws.write("missions/s.yaml", """
        mission: s
        objective: file names that are not UTF-8
        tasks:
          names: {worker: python, with: {function: "tools:names"}}
          boom: {worker: python, with: {function: "tools:boom"}}
        """)
    doc = ws.run("s", "--keep-going", "--junit", "report.xml", rc=1)
    assert task(doc, "names")["outputs"] == {"files": ["a\\udcffb"], "k\\udcfe": 1}
    assert (task(doc, "boom")["status"], task(doc, "boom")["error"]) == (
        "failed", "RuntimeError: bad \\ud800 name")
    assert "bad \\ud800 name" in ws.nx("logs", "last", "boom").out
    assert ws.exists("report.xml")
    assert ws.show()["status"] == "failed"
    ws.audit_verify()
