"""`run`/`resume --format json` print one JSON document whatever the exit code (SPEC §7),
also when nothing ran: a refused run's document names why, with the located errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    workspace.write(
        "missions/hello.yaml",
        """
        mission: hello
        objective: say hello
        inputs:
          name: {type: string, default: world}
        tasks:
          greet: {run: 'echo hello {{ inputs.name }}'}
        """,
    )
    yield workspace
    workspace.cleanup()


def refused(ws: Workspace, *args: str, recorded: bool = False) -> dict:
    result = ws.nx(*args, "--format", "json")
    assert result.rc == 2, result
    document = json.loads(result.out)  # exactly one document on stdout
    assert document["exit_code"] == 2
    assert document["error"] and document["error"].splitlines()[0] in result.err  # stderr says it too
    if not recorded:
        assert document["status"] == "refused"
        assert document["tasks"] == []
    return document


def test_an_unknown_mission_still_prints_a_document(ws: Workspace) -> None:
    document = refused(ws, "run", "helo")
    assert document["mission"] == "helo"
    assert document["run_id"] is None
    assert "unknown mission 'helo'" in document["error"]


def test_invalid_mission_files_list_their_located_errors(ws: Workspace) -> None:
    ws.write(
        "missions/broken.yaml",
        """
        mission: broken
        objective: x
        tasks:
          a: {run: 'true', bogus: 1}
          b: {run: 'true', retries: many}
        """,
    )
    document = refused(ws, "run", "broken")
    located = {(e["path"], e["line"], e["col"]) for e in document["errors"]}
    assert ("missions/broken.yaml", 4, 20) in located, document["errors"]
    messages = " ".join(e["message"] for e in document["errors"])
    assert "unknown key 'bogus'" in messages
    assert "task 'b'" in messages
    assert json.loads(ws.nx("runs", "--format", "json").out)["runs"] == []  # nothing was recorded


def test_a_mission_whose_file_is_not_yaml_is_named_by_its_located_error(ws: Workspace) -> None:
    ws.write("missions/prod.yaml", """
        mission: "deploy"   # a file named otherwise than its id
        objective: x
        tasks:
          a: {run: 'true'}
          a: {run: 'false'}
        """)
    document = refused(ws, "run", "deploy")
    assert [(e["path"], e["line"], e["col"], e["message"]) for e in document["errors"]] == [
        ("missions/prod.yaml", 5, 3, "duplicate key 'a'")]
    plan = ws.nx("plan", "deploy")
    assert (plan.rc, plan.err) == (2, "missions/prod.yaml:5:3: error: duplicate key 'a' (first defined at line 4)\n")


def test_a_bad_input_value_is_refused_with_a_document(ws: Workspace) -> None:
    document = refused(ws, "run", "hello", "-i", "nme=x")
    assert "no input 'nme'" in document["error"]


def test_an_input_value_nested_too_deeply_is_refused_with_a_document(ws: Workspace) -> None:
    ws.write("missions/deep.yaml", """
        mission: deep
        objective: an array input
        inputs: {arr: {type: array}}
        tasks:
          a: {run: 'echo {{ inputs.arr | length }}'}
        """)
    document = refused(ws, "run", "deep", "-i", "arr=" + "[" * 400 + "]" * 400)
    assert document["error"] == "-i arr: the value is nested too deeply (more than 200 levels)"
    assert ws.nx("run", "deep", "-i", "arr=" + "[" * 100 + "]" * 100).rc == 0


def test_resume_of_an_unknown_run_prints_a_document(ws: Workspace) -> None:
    document = refused(ws, "resume", "20990101-000000-000000-dead")
    assert document["run_id"] is None
    assert "no run" in document["error"]


def test_resume_of_a_run_whose_mission_no_longer_parses_names_the_run(ws: Workspace) -> None:
    ws.write("missions/stop.yaml", """
        mission: stop
        objective: x
        tasks:
          first: {run: 'exit 1'}
        """)
    first = ws.run("stop", rc=1)
    ws.write("missions/stop.yaml", "mission: stop\nobjective: x\ntasks: [oops\n")
    document = refused(ws, "resume", "last", recorded=True)
    assert document["run_id"] == first["run_id"]
    assert document["mission"] == "stop"
    assert document["status"] == "failed"  # the run as the ledger holds it, every task listed
    assert [(t["id"], t["status"]) for t in document["tasks"]] == [("first", "failed")]
    assert document["errors"][0]["path"] == "missions/stop.yaml"


def test_text_format_keeps_stdout_empty(ws: Workspace) -> None:
    result = ws.nx("run", "helo")
    assert result.rc == 2
    assert result.out == ""
    assert "unknown mission 'helo'" in result.err
