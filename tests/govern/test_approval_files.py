"""Committed approval files in `approvals/` govern runs: audited, named in reasons, predicted by `plan`.

Real workspaces, keys made by `nexusmon keygen`, the real CLI and ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cli.test_keygen_approve import approved_into_file, keygen, nx, nx_json, write

from nexusmon.govern.approvals import sign, write_approval_file
from nexusmon.govern.keys import load_private_key

RELEASE = """
mission: release
objective: ship behind an approval
tasks:
  build:
    run: echo build >> trace.log
  ship:
    needs: [build]
    rank: A
    run: echo ship >> trace.log
"""


def run_events(root: Path, run_id: str) -> list[dict[str, Any]]:
    code, doc = nx_json(root, "audit", "--run", run_id)
    assert code == 0
    return list(doc["events"])


class Approved(NamedTuple):
    root: Path
    held_run: str
    file: str  # workspace-relative


@pytest.fixture
def approved(tmp_path: Path) -> Approved:
    """A workspace whose `ship` (rank A) alice approved into approvals/ after a held run."""
    root = tmp_path / "ws"
    run_id, written = approved_into_file(root, RELEASE)
    return Approved(root, run_id, f"approvals/{written.name}")


def test_plan_predicts_that_the_approval_file_lets_the_task_run(approved: Approved) -> None:
    root, _, file = approved
    code, doc = nx_json(root, "plan", "release")
    assert code == 0
    ship = {t["id"]: t for t in doc["tasks"]}["ship"]
    assert (ship["decision"], ship["prediction"]) == ("approve", f"run (approved by alice in {file})")
    assert ship["reasons"][-1] == f"approved by alice ({file})"

    text = nx(root, "plan", "release").out.splitlines()
    assert f"      - approved by alice ({file})" in text


def test_a_run_that_proceeds_on_the_file_audits_who_approved_it(approved: Approved) -> None:
    root, held_run, file = approved
    code, doc = nx_json(root, "run", "release")
    assert code == 0, doc
    run_id = doc["run_id"]
    assert (root / "trace.log").read_text().split() == ["build", "build", "ship"]

    events = run_events(root, run_id)
    kinds = [e["kind"] for e in events]
    assert kinds.index("run.started") < kinds.index("approval.applied") < kinds.index("task.started")
    (applied,) = [e for e in events if e["kind"] == "approval.applied"]
    code, shown = nx_json(root, "show", run_id)
    ship = {t["id"]: t for t in shown["tasks"]}["ship"]
    assert applied["task_id"] == "ship"
    payload = applied["payload"]
    assert {k: payload[k] for k in ("verdict", "operator", "file", "signed_in_run", "rank", "mission")} == {
        "verdict": "approve", "operator": "alice", "file": file, "signed_in_run": held_run,
        "rank": "A", "mission": "release",
    }
    assert payload["plan_digest"].startswith("sha256:")
    assert f"approved by alice ({file})" in ship["reasons"]
    assert ship["status"] == "succeeded"
    assert nx(root, "audit", "verify").code == 0


def test_plan_and_run_agree_once_the_task_changed(approved: Approved) -> None:
    root, _, _ = approved
    write(root, "missions/release.yaml", RELEASE.replace("echo ship >>", "echo ship-v2 >>"))
    code, doc = nx_json(root, "plan", "release")
    ship = {t["id"]: t for t in doc["tasks"]}["ship"]
    assert ship["prediction"] == "hold for approval"
    assert not [r for r in ship["reasons"] if r.startswith("approved by")]

    code, doc = nx_json(root, "run", "release")
    assert code == 3
    assert "approval.applied" not in [e["kind"] for e in run_events(root, doc["run_id"])]


def test_a_file_by_an_operator_policy_does_not_name_holds_in_plan_and_run(approved: Approved) -> None:
    root, _, _ = approved
    alice = (root.parent / "home/.config/nexusmon/operator.pub").read_text().split()[-1]
    bob = keygen(root, "--key", str(root.parent / "bob.key"))
    write(root, "policies/operators.yaml", f"""
        policy: operators
        operators:
          - {{name: alice, public_key: "{alice}", may_approve: [A, S]}}
          - {{name: bob, public_key: "{bob}", may_approve: [A]}}
        rules:
          - id: bob-ships
            when: {{task: ship}}
            then: {{approvers: [bob]}}
        """)
    code, doc = nx_json(root, "plan", "release")
    assert code == 0, doc
    assert {t["id"]: t for t in doc["tasks"]}["ship"]["prediction"] == "hold for approval"

    code, doc = nx_json(root, "run", "release")
    assert code == 3
    refused = [e["payload"]["problem"] for e in run_events(root, doc["run_id"])
               if e["kind"] == "approval.refused"]
    assert refused == [
        "approval for task 'ship' refused: alice is not among the approvers named by policy (bob)"
    ]


def test_resume_of_a_finished_task_records_no_second_approval(approved: Approved) -> None:
    root, _, _ = approved
    code, doc = nx_json(root, "run", "release")
    assert code == 0
    code, _ = nx_json(root, "resume", doc["run_id"])
    assert code == 0
    kinds = [e["kind"] for e in run_events(root, doc["run_id"])]
    assert kinds.count("approval.applied") == 1


def test_a_file_signed_for_a_lower_rank_than_the_task_has_does_not_approve_it(tmp_path: Path) -> None:
    """The signer writes the `rank` field: bob, who may approve B, labels a rank-A task B."""
    root = tmp_path / "ws"
    write(root, "missions/release.yaml", RELEASE)
    bob_key = root.parent / "bob.key"
    bob = keygen(root, "--key", str(bob_key))
    write(root, "policies/operators.yaml", f"""
        policy: operators
        operators:
          - {{name: bob, public_key: "{bob}", may_approve: [B]}}
        """)
    code, doc = nx_json(root, "run", "release")
    assert code == 3, doc
    ship = {t["id"]: t for t in doc["tasks"]}["ship"]
    assert (ship["rank"], ship["status"]) == ("A", "awaiting_approval")
    forged = sign(load_private_key(bob_key), run_id=doc["run_id"], task_id="ship", mission="release",
                  plan_digest=ship["plan_digest"], verdict="approve", operator="bob", rank="B")
    written = write_approval_file(root / "approvals", forged)

    code, doc = nx_json(root, "plan", "release")
    assert {t["id"]: t for t in doc["tasks"]}["ship"]["prediction"] == "hold for approval"
    code, doc = nx_json(root, "run", "release")
    assert code == 3, doc
    assert (root / "trace.log").read_text().split() == ["build", "build"]
    refused = [e["payload"]["problem"] for e in run_events(root, doc["run_id"])
               if e["kind"] == "approval.refused"]
    assert refused == [
        (f"approvals/{written.name}: approval for task 'ship' refused: the approval of task 'ship' "
        "was signed for rank B, but the task is rank A")
    ]
