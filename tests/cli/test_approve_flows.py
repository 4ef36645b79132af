"""`approve` and `reject` across a run's life: secret inputs, final rejections, tasks that are
not held, repeated verdicts, and notes holding a secret's value."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from .test_keygen_approve import audit_events, declare, keygen, lines, nx, nx_json, write

SECRET = "hunter2hunter2"

DEPLOY = """
mission: deploy
objective: ship to whoever the input names
inputs:
  who: {type: string, default: nobody}
secrets: [TOKEN]
tasks:
  ship:
    rank: A
    run: echo "{{ inputs.who }}" >> trace.log
  verify:
    needs: [ship]
    rank: A
    run: echo verify >> trace.log
  later:
    if: "false"
    rank: A
    run: echo later >> trace.log
"""


@pytest.fixture
def deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with TOKEN set and alice declared as an operator of ranks A and S."""
    monkeypatch.setenv("TOKEN", SECRET)
    root = tmp_path / "ws"
    write(root, "missions/deploy.yaml", DEPLOY)
    declare(root, keygen(root))
    return root


def held_deploy(ws: Path, *inputs: str) -> str:
    code, doc = nx_json(ws, "run", "deploy", *inputs)
    assert code == 3, doc
    assert {t["id"]: t["status"] for t in doc["tasks"]} == {
        "ship": "awaiting_approval", "verify": "cancelled", "later": "skipped"}
    return str(doc["run_id"])


def approval_notes(ws: Path) -> list[str]:
    with sqlite3.connect(ws / ".nexusmon" / "ledger.db") as db:
        return [row[0] for row in db.execute("SELECT note FROM approvals ORDER BY id")]


def run_status(ws: Path, run_id: str) -> tuple[str, dict[str, str]]:
    code, doc = nx_json(ws, "show", run_id)
    assert code == 0
    return doc["status"], {t["id"]: t["status"] for t in doc["tasks"]}


# ---------------------------------------------------------------- inputs holding a secret's value


def test_a_task_whose_input_is_a_secret_is_approved_for_its_real_value(deploy: Path) -> None:
    run_id = held_deploy(deploy, "-i", f"who={SECRET}")
    outcome = nx(deploy, "approve", run_id, "ship")
    assert outcome.code == 0, outcome.err
    assert outcome.out == (f"approved task 'ship' of run {run_id} as alice (rank A); "
                           f"continue with: nexusmon resume {run_id}\n")
    assert nx(deploy, "resume", run_id).code == 3, "verify is held next"
    assert nx(deploy, "approve", run_id, "verify").code == 0
    assert nx(deploy, "resume", run_id).code == 0
    assert run_status(deploy, run_id)[0] == "succeeded"
    assert lines(deploy, "trace.log") == [SECRET, "verify"]


def test_approving_a_run_given_a_secret_as_input_needs_the_secret(
    deploy: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = held_deploy(deploy, "-i", f"who={SECRET}")
    monkeypatch.delenv("TOKEN")
    for verb in ("approve", "reject"):
        outcome = nx(deploy, verb, run_id, "ship")
        assert (outcome.code, outcome.err) == (2, (
            f"error: run {run_id} was given the value of secret TOKEN as an input; "
            f"set TOKEN in the environment to {verb} its tasks\n"))
    assert approval_notes(deploy) == []


# ---------------------------------------------------------------- a rejection is final


def test_a_rejected_task_cannot_be_approved_and_resume_keeps_it_failed(
    deploy: Path, tmp_path: Path,
) -> None:
    bob = keygen(deploy, "--key", str(tmp_path / "bob.key"))
    declare(deploy, keygen(deploy, "--force"), extra=f"""
          - {{name: bob, public_key: "{bob}", may_approve: [A]}}
        """)
    run_id = held_deploy(deploy)
    assert nx(deploy, "reject", run_id, "ship", "--note", "not during the freeze").code == 0
    outcome = nx(deploy, "approve", run_id, "ship", "--key", str(tmp_path / "bob.key"))
    assert (outcome.code, outcome.out, outcome.err) == (2, "", (
        f"error: task 'ship' of run {run_id} was rejected by alice; "
        "a rejection is final: start a new run\n"))
    assert approval_notes(deploy) == ["not during the freeze"]
    assert audit_events(deploy, "approval.recorded") == []
    assert nx(deploy, "resume", run_id).code == 1
    assert run_status(deploy, run_id) == ("failed", {
        "ship": "failed", "verify": "cancelled", "later": "skipped"})
    assert lines(deploy, "trace.log") == []


def test_a_rejection_stands_against_an_approval_file_and_an_edited_task(deploy: Path) -> None:
    rejected = held_deploy(deploy)
    assert nx(deploy, "reject", rejected, "ship", "--note", "no").code == 0
    other = held_deploy(deploy)  # a second run of the same plan, approved into approvals/
    assert nx(deploy, "approve", other, "ship", "--out", "approvals").code == 0
    assert nx(deploy, "resume", rejected).code == 1
    assert run_status(deploy, rejected)[1]["ship"] == "failed"
    write(deploy, "missions/deploy.yaml", DEPLOY.replace("echo verify", "echo verified"))
    assert nx(deploy, "resume", rejected).code == 1  # still rejected, not held again
    assert run_status(deploy, rejected)[1]["ship"] == "failed"
    assert lines(deploy, "trace.log") == []


def test_rejecting_a_rejected_task_again_records_nothing(deploy: Path) -> None:
    run_id = held_deploy(deploy)
    assert nx(deploy, "reject", run_id, "ship").code == 0
    outcome = nx(deploy, "reject", run_id, "ship", "--note", "really")
    assert (outcome.code, outcome.out) == (
        0, f"task 'ship' of run {run_id} is already rejected by alice; the run is failed\n")
    assert approval_notes(deploy) == [""]
    assert len(audit_events(deploy, "rejection.recorded")) == 1


# ---------------------------------------------------------------- only a held task, once


def test_approving_twice_records_one_approval(deploy: Path) -> None:
    run_id = held_deploy(deploy)
    assert nx(deploy, "approve", run_id, "ship", "--note", "first").code == 0
    outcome = nx(deploy, "approve", run_id, "ship", "--note", "second", "--out", "approvals")
    written = next((deploy / "approvals").glob("*.yaml"))
    assert (outcome.code, outcome.out, outcome.err) == (0, (
        f"task 'ship' of run {run_id} is already approved by alice; "
        f"continue with: nexusmon resume {run_id}\n"
        f"wrote approvals/{written.name} (commit it so runs of the same plan proceed)\n"), "")
    assert "note: first" in written.read_text(encoding="utf-8").splitlines(), "the recorded approval"
    assert approval_notes(deploy) == ["first"]
    assert len(audit_events(deploy, "approval.recorded")) == 1


def test_an_approval_of_an_edited_task_is_needed_again(deploy: Path) -> None:
    run_id = held_deploy(deploy)
    assert nx(deploy, "approve", run_id, "ship", "--note", "v1").code == 0
    write(deploy, "missions/deploy.yaml", DEPLOY.replace('"{{ inputs.who }}"', "v2"))
    assert nx(deploy, "approve", run_id, "ship", "--note", "v2").code == 2  # not what the run held
    assert nx(deploy, "resume", run_id).code == 3, "the v1 approval does not cover v2"
    outcome = nx(deploy, "approve", run_id, "ship", "--note", "v2")
    assert outcome.out.startswith(f"approved task 'ship' of run {run_id} as alice"), outcome
    assert approval_notes(deploy) == ["v1", "v2"]
    assert nx(deploy, "resume", run_id).code == 3
    assert lines(deploy, "trace.log") == ["v2"]


def test_a_task_that_already_ran_cannot_be_approved(deploy: Path) -> None:
    run_id = held_deploy(deploy)
    assert nx(deploy, "approve", run_id, "ship").code == 0
    assert nx(deploy, "resume", run_id).code == 3
    outcome = nx(deploy, "approve", run_id, "ship")
    assert (outcome.code, outcome.out, outcome.err) == (2, "", (
        f"error: task 'ship' of run {run_id} already succeeded; there is nothing to approve\n"))
    assert len(approval_notes(deploy)) == 1


@pytest.mark.parametrize(("verb", "task", "problem"), [
    ("approve", "verify", "is cancelled, not awaiting approval; only a held task can be approved"),
    ("approve", "later", "already skipped; there is nothing to approve"),
    ("reject", "verify", "is cancelled, not awaiting approval; only a held task can be rejected"),
    ("reject", "later", "already skipped; there is nothing to reject"),
])
def test_a_task_the_run_does_not_hold_takes_no_verdict(
    deploy: Path, verb: str, task: str, problem: str,
) -> None:
    run_id = held_deploy(deploy)
    outcome = nx(deploy, verb, run_id, task)
    assert (outcome.code, outcome.out, outcome.err) == (
        2, "", f"error: task '{task}' of run {run_id} {problem}\n")
    assert approval_notes(deploy) == []
    assert run_status(deploy, run_id)[0] == "awaiting_approval"


def test_a_task_that_failed_on_its_own_cannot_be_approved(deploy: Path) -> None:
    write(deploy, "missions/deploy.yaml", DEPLOY.replace(
        'echo "{{ inputs.who }}" >> trace.log', "exit 7"))
    run_id = held_deploy(deploy)
    assert nx(deploy, "approve", run_id, "ship").code == 0
    assert nx(deploy, "resume", run_id).code == 1
    outcome = nx(deploy, "approve", run_id, "ship")
    assert (outcome.code, outcome.err) == (2, (
        f"error: task 'ship' of run {run_id} is failed, not awaiting approval; "
        "only a held task can be approved\n"))


# ---------------------------------------------------------------- notes are masked


def test_an_approval_note_holding_a_secret_is_masked_everywhere(deploy: Path) -> None:
    run_id = held_deploy(deploy)
    outcome = nx(deploy, "approve", run_id, "ship", "--note", f"rotated {SECRET} first",
                 "--out", "approvals")
    assert outcome.code == 0, outcome.err
    assert approval_notes(deploy) == ["rotated *** first"]
    assert audit_events(deploy, "approval.recorded")[0]["payload"]["note"] == "rotated *** first"
    written = next((deploy / "approvals").glob("*.yaml")).read_text(encoding="utf-8")
    assert "note: rotated *** first" in written.splitlines()
    assert SECRET not in written
    assert nx(deploy, "resume", run_id).code == 3, "the masked note still verifies"


def test_a_rejection_note_holding_a_secret_is_masked_everywhere(deploy: Path) -> None:
    run_id = held_deploy(deploy)
    assert nx(deploy, "reject", run_id, "ship", "--note", f"rotated {SECRET} first").code == 0
    assert approval_notes(deploy) == ["rotated *** first"]
    assert audit_events(deploy, "rejection.recorded")[0]["payload"]["note"] == "rotated *** first"
    code, doc = nx_json(deploy, "show", run_id)
    assert (code, doc["error"]) == (0, "task 'ship' rejected by alice: rotated *** first")
    errors = {t["id"]: t["error"] for t in doc["tasks"]}
    assert errors["ship"] == "rejected by alice: rotated *** first"
    shown = nx(deploy, "show", run_id)
    assert SECRET not in shown.out + shown.err


# ---------------------------------------------------------------- the task changed since it was held


def test_approve_refuses_a_task_edited_since_the_run_held_it(deploy: Path) -> None:
    run_id = held_deploy(deploy)
    mission = deploy / "missions" / "deploy.yaml"
    mission.write_text(DEPLOY.replace('echo "{{ inputs.who }}"', "echo DROP DATABASE prod"), encoding="utf-8")
    refused = nx(deploy, "approve", run_id, "ship")
    assert refused.code == 2
    assert f"task 'ship' of run {run_id} changed since the run held it" in refused.err
    assert f"nexusmon resume {run_id}" in refused.err
    assert approval_notes(deploy) == []  # nothing was signed
    assert nx(deploy, "resume", run_id).code == 3  # held again, as it is now
    assert nx(deploy, "approve", run_id, "ship").code == 0
    assert nx(deploy, "resume", run_id).code == 3  # verify is held next
    assert lines(deploy, "trace.log") == ["DROP", "DATABASE", "prod"]
