"""`nexusmon keygen`, `approve` and `reject` on real workspaces, keys and ledgers.

Also holds the small CLI helpers the other tests in this folder share.
"""

from __future__ import annotations

import json
import os
import re
import stat
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest
from cli_runner import run_cli

from nexusmon.store.runlock import acquire

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
  announce:
    needs: [ship]
    run: echo announce >> trace.log
"""

TOKEN = re.compile(r"ed25519:[A-Za-z0-9+/=]{40,}")


class Outcome(NamedTuple):
    code: int
    out: str
    err: str


def nx(root: Path, *args: str, home: Path | None = None) -> Outcome:
    """`nexusmon -C root ARGS` through the console script's boundary, with a private HOME."""
    env: dict[str, str | None] = {"NEXUSMON_STATE_DIR": None, "XDG_CONFIG_HOME": None}
    env["HOME"] = str(home if home is not None else root.parent / "home")
    return Outcome(*run_cli(["-C", str(root), *args], env=env, input=""))


def nx_json(root: Path, *args: str) -> tuple[int, dict]:
    outcome = nx(root, *args, "--format", "json")
    return outcome.code, json.loads(outcome.out)


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def lines(root: Path, rel: str) -> list[str]:
    path = root / rel
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def audit_kinds(root: Path) -> list[str]:
    code, doc = nx_json(root, "audit")
    assert code == 0
    return [event["kind"] for event in doc["events"]]


def audit_events(root: Path, kind: str) -> list[dict]:
    code, doc = nx_json(root, "audit")
    assert code == 0
    return [event for event in doc["events"] if event["kind"] == kind]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "missions/release.yaml", RELEASE)
    return root


def keygen(ws: Path, *extra: str) -> str:
    outcome = nx(ws, "keygen", *extra)
    assert outcome.code == 0, outcome.err
    assert TOKEN.fullmatch(outcome.out.rstrip("\n")), outcome.out  # the key alone: PUB=$(nexusmon keygen)
    assert "private key:" in outcome.err
    return outcome.out.strip()


def declare(ws: Path, token: str, may_approve: str = "[A, S]", extra: str = "") -> None:
    write(ws, "policies/operators.yaml", f"""
        policy: operators
        operators:
          - {{name: alice, public_key: "{token}", may_approve: {may_approve}}}
        {extra}
        """)


def approved_into_file(root: Path, mission: str, out: str = "approvals") -> tuple[str, Path]:
    """``mission`` (a release with a rank-A `ship`) held, then `ship` approved by alice into ``out``:
    the held run's id and the approval file written."""
    write(root, "missions/release.yaml", mission)
    declare(root, keygen(root))
    code, doc = nx_json(root, "run", "release")
    assert code == 3, doc
    outcome = nx(root, "approve", doc["run_id"], "ship", "--out", out)
    assert outcome.code == 0, outcome.err
    (written,) = (root / out).glob("*.yaml")
    return str(doc["run_id"]), written


def held_run(ws: Path) -> str:
    code, doc = nx_json(ws, "run", "release")
    assert code == 3, doc
    assert lines(ws, "trace.log") == ["build"]
    return str(doc["run_id"])


@pytest.fixture
def held(ws: Path) -> tuple[Path, str, str]:
    """A workspace whose run holds `ship` for approval, alice's key declared with A and S."""
    token = keygen(ws)
    declare(ws, token)
    return ws, held_run(ws), token


# ---------------------------------------------------------------- keygen


def test_keygen_writes_a_private_key_only_its_owner_reads(ws: Path) -> None:
    token = keygen(ws, "--name", "alice")
    key = ws.parent / "home" / ".config" / "nexusmon" / "operator.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    public = key.with_suffix(".pub").read_text()
    assert public == f"# nexusmon operator public key (alice)\n{token}\n"


def test_keygen_never_replaces_a_key_without_force(ws: Path) -> None:
    first = keygen(ws)
    key = ws.parent / "home" / ".config" / "nexusmon" / "operator.key"
    outcome = nx(ws, "keygen")
    assert outcome.code == 2
    assert outcome.err == (
        f"error: an operator key already exists at {key}; keep it, or pass --force to replace it "
        "(approvals signed with it stop matching policy)\n"
    )
    assert keygen(ws, "--force") != first


def test_keygen_key_option_writes_the_pair_elsewhere(ws: Path, tmp_path: Path) -> None:
    target = tmp_path / "keys" / "ci.key"
    token = keygen(ws, "--key", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert token in target.with_suffix(".pub").read_text()
    assert not (ws.parent / "home" / ".config").exists(), "--key leaves the default location alone"


# ---------------------------------------------------------------- approve


def test_approve_then_resume_runs_the_held_task_once(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    outcome = nx(ws, "approve", run_id, "ship", "--note", "looks good")
    assert outcome.code == 0, outcome.err
    assert outcome.out == (
        f"approved task 'ship' of run {run_id} as alice (rank A); "
        f"continue with: nexusmon resume {run_id}\n"
    )
    code, doc = nx_json(ws, "resume", run_id)
    assert code == 0 and doc["status"] == "succeeded"
    assert lines(ws, "trace.log") == ["build", "ship", "announce"]
    recorded = audit_events(ws, "approval.recorded")
    assert [e["payload"]["operator"] for e in recorded] == ["alice"]
    assert recorded[0]["payload"]["note"] == "looks good"
    assert nx(ws, "audit", "verify").code == 0


def test_approve_accepts_last_and_never_reads_stdin(held: tuple[Path, str, str]) -> None:
    ws, _, _ = held
    assert nx(ws, "approve", "last", "ship").code == 0
    assert nx(ws, "resume", "last").code == 0


def test_unknown_task_names_the_closest_one(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    outcome = nx(ws, "approve", run_id, "shp")
    assert outcome.code == 2
    assert outcome.err == f"error: run {run_id} (mission 'release') has no task 'shp' (did you mean 'ship'?)\n"


def test_a_task_that_runs_on_its_own_needs_no_approval(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    outcome = nx(ws, "approve", run_id, "build")
    assert outcome.code == 2
    assert outcome.err == "error: task 'build' does not need approval (decision auto)\n"


def test_there_is_no_default_key(ws: Path) -> None:
    run_id = held_run(ws)
    outcome = nx(ws, "approve", run_id, "ship")
    key = ws.parent / "home" / ".config" / "nexusmon" / "operator.key"
    assert outcome.code == 2
    assert outcome.err == f"error: no operator key at {key}; run `nexusmon keygen`\n"
    assert "approval.recorded" not in audit_kinds(ws)
    assert nx(ws, "resume", run_id).code == 3


def test_a_key_no_policy_declares_is_refused_and_audited(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    stranger_key = ws.parent / "stranger.key"
    stranger = keygen(ws, "--key", str(stranger_key))
    outcome = nx(ws, "approve", run_id, "ship", "--key", str(stranger_key))
    assert outcome.code == 2
    assert outcome.err == (
        f"error: cannot approve task 'ship': key {stranger[:16]}… is not declared by any "
        "operator in policies/\n"
    )
    refused = audit_events(ws, "approval.refused")
    assert refused[-1]["payload"]["public_key"] == stranger
    assert "is not declared" in refused[-1]["payload"]["reason"]
    assert nx(ws, "resume", run_id).code == 3
    assert "ship" not in lines(ws, "trace.log")


def test_an_operator_may_approve_only_listed_ranks(ws: Path) -> None:
    declare(ws, keygen(ws), may_approve="[B]")
    run_id = held_run(ws)
    outcome = nx(ws, "approve", run_id, "ship")
    assert outcome.code == 2
    assert outcome.err == "error: cannot approve task 'ship': alice may approve B; task 'ship' is rank A\n"
    assert audit_events(ws, "approval.refused")[-1]["payload"]["operator"] == "alice"
    assert nx(ws, "resume", run_id).code == 3


def test_rule_approvers_limit_who_may_approve(ws: Path, tmp_path: Path) -> None:
    bob = keygen(ws, "--key", str(tmp_path / "bob.key"))
    declare(ws, keygen(ws), extra=f"""
          - {{name: bob, public_key: "{bob}", may_approve: [A]}}
        rules:
          - id: bob-ships
            when: {{task: ship}}
            then: {{approvers: [bob]}}
        """)
    run_id = held_run(ws)
    outcome = nx(ws, "approve", run_id, "ship")
    assert outcome.code == 2
    assert outcome.err == (
        "error: cannot approve task 'ship': policy names bob as approvers of this task, not alice\n"
    )
    assert nx(ws, "approve", run_id, "ship", "--key", str(tmp_path / "bob.key")).code == 0


def test_approval_file_applies_to_the_same_plan_only(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    outcome = nx(ws, "approve", run_id, "ship", "--out", "approvals")
    assert outcome.code == 0, outcome.err
    files = sorted((ws / "approvals").glob("*.yaml"))
    assert len(files) == 1
    assert outcome.out.splitlines()[-1] == (
        f"wrote approvals/{files[0].name} (commit it so runs of the same plan proceed)"
    )
    code, doc = nx_json(ws, "run", "release")
    assert code == 0, doc
    write(ws, "missions/release.yaml", RELEASE.replace("echo ship >>", "echo ship-v2 >>"))
    code, doc = nx_json(ws, "run", "release")
    assert code == 3
    assert "ship-v2" not in lines(ws, "trace.log")


def test_an_edited_approval_file_is_refused(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    assert nx(ws, "approve", run_id, "ship", "--out", "approvals").code == 0
    path = next((ws / "approvals").glob("*.yaml"))
    path.write_text(path.read_text().replace("note: ''", "note: forged"))
    code, _ = nx_json(ws, "run", "release")
    assert code == 3, "an altered approval must not let the task run"
    reasons = [e["payload"]["problem"] for e in audit_events(ws, "approval.refused")]
    assert any("does not verify" in reason for reason in reasons), reasons


# ---------------------------------------------------------------- reject


def test_reject_ends_the_run(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    outcome = nx(ws, "reject", run_id, "ship", "--note", "too risky")
    assert outcome.code == 0, outcome.err
    assert outcome.out == f"rejected task 'ship' of run {run_id} as alice; the run is failed\n"
    code, doc = nx_json(ws, "show", run_id)
    assert code == 0 and doc["status"] == "failed"
    assert doc["error"] == "task 'ship' rejected by alice: too risky"
    tasks = {t["id"]: t for t in doc["tasks"]}
    assert (tasks["ship"]["status"], tasks["ship"]["error"]) == ("failed", "rejected by alice: too risky")
    assert tasks["build"]["status"] == "succeeded"
    assert "rejection.recorded" in audit_kinds(ws)
    assert nx(ws, "resume", run_id).code == 1
    assert lines(ws, "trace.log") == ["build"]


def test_a_run_another_process_drives_cannot_be_rejected_under_it(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    with acquire(ws / ".nexusmon", run_id):  # what a live `nexusmon resume` holds
        outcome = nx(ws, "reject", run_id, "ship")
    assert (outcome.code, outcome.err) == (
        2, f"error: run {run_id} is being driven by another nexusmon process (pid {os.getpid()})\n")
    assert nx_json(ws, "show", run_id)[1]["status"] == "awaiting_approval"
    assert nx(ws, "reject", run_id, "ship").code == 0


def test_a_task_that_already_ran_cannot_be_rejected(held: tuple[Path, str, str]) -> None:
    ws, run_id, _ = held
    assert nx(ws, "approve", run_id, "ship").code == 0
    assert nx(ws, "resume", run_id).code == 0
    outcome = nx(ws, "reject", run_id, "ship")
    assert outcome.code == 2
    assert outcome.err == f"error: task 'ship' of run {run_id} already succeeded; there is nothing to reject\n"


def test_the_approve_hint_quotes_a_task_id_the_shell_would_split(ws: Path) -> None:
    write(ws, "missions/regions.yaml", """
mission: regions
objective: a held matrix task whose id holds a space
tasks:
  ship:
    matrix: {region: ["eu west"]}
    rank: A
    run: echo shipped
""")
    outcome = nx(ws, "run", "regions")
    assert outcome.code == 3, outcome.err
    hint = next(line for line in outcome.out.splitlines() if "approve with:" in line)
    assert hint.endswith("'ship[eu west]' && nexusmon resume " + hint.split()[-1])


def test_the_declare_snippet_pastes_as_valid_policy_yaml_whatever_the_name(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws, "missions/m.yaml", "mission: m\nobjective: x\ntasks:\n  t: {worker: noop}\n")
    outcome = nx(ws, "keygen", "--name", "ops: #oncall [lead]")
    snippet = next(line for line in outcome.err.splitlines() if "declare it in a policy:" in line)
    write(ws, "policies/ops.yaml", "policy: ops\n" + snippet.split("declare it in a policy:", 1)[1].strip() + "\n")
    assert nx(ws, "validate").code == 0, nx(ws, "validate").err
    assert nx(ws, "status").code == 0


def test_a_mission_file_outside_missions_is_named_as_such(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws, "missions/m.yaml", "mission: m\nobjective: x\ntasks:\n  t: {worker: noop}\n")
    write(ws, "drafts/d.yaml", "mission: d\nobjective: x\ntasks:\n  t: {worker: noop}\n")
    outcome = nx(ws, "plan", str(ws / "drafts" / "d.yaml"))
    assert outcome.code == 2
    assert "is not a mission of this workspace: missions are the missions/*.yaml files" in outcome.err
    assert nx(ws, "plan", str(ws / "drafts" / "gone.yaml")).err.startswith("error: no mission file")
