"""Secrets: handed to tasks, never kept or shown (`***` everywhere nexusmon writes text)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import Workspace, task

SECRET = "nx-secret-value"
MASK = "***"

PLUGIN = """
class Leaky:
    name = "leaky"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        raise RuntimeError("rejected token " + task.env["NX_TOKEN"])
"""

MISSION = """
    mission: sec
    objective: secrets stay hidden
    secrets: [NX_TOKEN]
    tasks:
      leak:
        run: |
          echo "token is $NX_TOKEN"
          echo "stderr $NX_TOKEN" >&2
          echo "tok=$NX_TOKEN" >> "$NEXUSMON_OUTPUT"
      halves:
        run: |
          printf 'nx-sec'
          sleep 0.2
          printf 'ret-value'
      as-command:
        run: "{{ secrets.NX_TOKEN }}"
      plugin:
        worker: leaky
    """


@pytest.fixture(scope="module")
def secret_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Workspace, dict[str, Any], str]]:
    ws = Workspace(tmp_path_factory.mktemp("secrets"))
    ws.write("missions/sec.yaml", MISSION)
    ws.write("plugins/leaky.py", PLUGIN)
    summary = ws.scratch / "summary.md"
    result = ws.nx(
        "run",
        "sec",
        "--keep-going",
        "--format",
        "json",
        "--junit",
        str(ws.scratch / "junit.xml"),
        env={"NX_TOKEN": SECRET, "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.rc == 1, result.err
    yield ws, result.json(), result.out + result.err
    ws.cleanup()


def test_printed_secrets_are_masked_in_outputs_and_run_json(
    secret_run: tuple[Workspace, dict[str, Any], str],
) -> None:
    ws, doc, printed = secret_run
    assert SECRET not in printed
    leak = task(doc, "leak")
    assert leak["outputs"] == {"stdout": "token is ***", "tok": MASK, "exit_code": 0}
    assert task(doc, "halves")["outputs"]["stdout"] == MASK, "a secret printed in two halves leaked"
    shown = ws.nx("show", "last", "--format", "json")
    assert SECRET not in shown.out
    assert shown.json()["tasks"] == doc["tasks"]


def test_secrets_are_masked_in_error_messages(
    secret_run: tuple[Workspace, dict[str, Any], str],
) -> None:
    ws, doc, printed = secret_run
    assert task(doc, "as-command")["error"] == "command not found: ***"
    assert task(doc, "plugin")["error"] == "worker 'leaky' raised RuntimeError: rejected token ***"
    assert SECRET not in printed
    text = ws.nx("show", "last")
    assert SECRET not in text.out and "command not found: ***" in text.out


def test_secrets_are_masked_in_logs(secret_run: tuple[Workspace, dict[str, Any], str]) -> None:
    ws, _, _ = secret_run
    leak = ws.nx("logs", "last", "leak")
    assert sorted(leak.out.splitlines()) == ["stderr ***", "token is ***"]
    assert ws.nx("logs", "last", "halves").out.rstrip("\n") == MASK


def test_secrets_are_masked_in_the_audit_trail_and_ci_reports(
    secret_run: tuple[Workspace, dict[str, Any], str],
) -> None:
    ws, _, _ = secret_run
    trail = ws.nx("audit", "--format", "json")
    assert trail.rc == 0, trail.err
    assert SECRET not in trail.out
    notes = [
        e["payload"].get("note")
        for e in json.loads(trail.out)["events"]
        if e["task_id"] == "as-command" and e["kind"] == "task.failed"
    ]
    assert notes == ["command not found: ***"]
    for report in ("junit.xml", "summary.md"):
        assert SECRET not in (ws.scratch / report).read_text(encoding="utf-8")


def test_the_ledger_file_never_holds_a_secret(
    secret_run: tuple[Workspace, dict[str, Any], str],
) -> None:
    ws, _, _ = secret_run
    stored = ws.state_bytes()
    assert b"token is ***" in stored
    assert SECRET.encode() not in stored
    assert SECRET.encode("utf-16-le") not in stored


# -- a declared secret that is not set ------------------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    workspace.write(
        "missions/sec.yaml",
        "mission: sec\nobjective: o\nsecrets: [NX_TOKEN]\ntasks:\n  t: {run: touch ran.txt}\n",
    )
    yield workspace
    workspace.cleanup()


def test_a_missing_secret_is_a_usage_error(ws: Workspace) -> None:
    result = ws.nx("run", "sec")
    assert result.rc == 2
    assert (
        result.err
        == "error: mission 'sec' declares secret(s) NX_TOKEN that are not set in the environment\n"
    )
    assert not ws.exists("ran.txt")


def test_a_run_refused_for_a_missing_secret_leaves_no_run_behind(ws: Workspace) -> None:
    assert ws.nx("run", "sec").rc == 2
    runs = ws.nx("runs", "--format", "json")
    assert runs.json()["runs"] == []


def test_a_secret_given_as_a_bad_input_value_is_masked_in_the_error(ws: Workspace) -> None:
    ws.write("missions/typed.yaml", """
        mission: typed
        objective: an integer input
        secrets: [TOKEN]
        inputs:
          n: {type: integer}
          level: {type: string, enum: [low, high]}
        tasks:
          t: {run: "echo {{ inputs.n }} {{ inputs.level }}"}
        """)
    env = {"TOKEN": "hunter2-secret"}
    typed = ws.nx("run", "typed", "-i", "n=hunter2-secret", "-i", "level=low", env=env)
    assert (typed.rc, typed.err) == (2, "error: input 'n' expects integer, got '***'\n")
    listed = ws.nx("run", "typed", "-i", "n=1", "-i", "level=hunter2-secret", env=env)
    assert listed.rc == 2 and "hunter2" not in listed.err and "got '***'" in listed.err
    escaped = {"TOKEN": "hunter2\\secret\tx"}  # repr writes it as 'hunter2\\secret\tx'
    quoted = ws.nx("run", "typed", "-i", "n=1", "-i", f"level={escaped['TOKEN']}", env=escaped)
    assert quoted.rc == 2 and "hunter2" not in quoted.err and "got '***'" in quoted.err, quoted.err


PEM = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQ\n-----END KEY-----\n"


def test_a_line_of_a_multi_line_secret_is_masked_wherever_it_shows(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/pem.yaml", """
        mission: pem
        objective: print one line of a key
        secrets: [DEPLOY_KEY]
        tasks:
          line: {run: 'printf "%s\\n" "$DEPLOY_KEY" | sed -n 2p; printf "%s\\n" "$DEPLOY_KEY" | sed -n 2p > "$NEXUSMON_OUTPUT"; exit 3'}
        """)
    result = ws.nx("run", "pem", "--format", "json", env={"DEPLOY_KEY": PEM})
    assert result.rc == 1, result.err
    shown = result.out + result.err + ws.nx("logs", "last", "line").out + ws.nx("audit").out
    assert "MIIEvQIBADANBgkqhkiG9w0BAQ" not in shown and "***" in shown
    assert b"MIIEvQIBADANBgkqhkiG9w0BAQ" not in ws.state_bytes()
    ws.cleanup()


def test_an_artifact_named_after_a_secret_is_refused_not_stored(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/name.yaml", """
        mission: name
        objective: a file named after a secret
        secrets: [NX_TOKEN]
        tasks:
          write: {run: 'mkdir -p out && echo hi > "out/$NX_TOKEN.txt" && echo ok > out/plain.txt',
                  artifacts: ["out/*"]}
        """)
    result = ws.nx("run", "name", "--format", "json", env={"NX_TOKEN": SECRET})
    assert result.rc == 1, result.err
    assert task(result.json(), "write")["error"] == (
        "artifact 'out/***.txt' has a secret in its path; a stored path is never masked, "
        "so it is not stored"
    )
    assert SECRET not in result.out + result.err + ws.nx("vault", "ls").out
    assert SECRET.encode() not in ws.state_bytes()
    ws.cleanup()
