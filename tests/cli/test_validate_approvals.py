"""Files in `approvals/` are checked by `validate` and `doctor`, and named when a run ignores them.

Real workspaces, keys made by `nexusmon keygen`, approvals signed by `nexusmon approve --out`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from .test_keygen_approve import (
    RELEASE,
    approved_into_file,
    audit_events,
    keygen,
    nx,
    nx_json,
    write,
)

BROKEN_YAML = "run_id: [unclosed\n  task_id: ship\n"


class Signed(NamedTuple):
    root: Path
    run_id: str
    file: Path  # a valid approval file alice signed


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    """A held run of `release` whose `ship` alice approved into approvals/."""
    root = tmp_path / "ws"
    run_id, file = approved_into_file(root, RELEASE)
    return Signed(root, run_id, file)


def copy_edited(source: Path, name: str, old: str, new: str) -> Path:
    """``source`` copied beside itself as ``name`` with ``old`` replaced (must occur once)."""
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1, text
    target = source.parent / name
    target.write_text(text.replace(old, new), encoding="utf-8")
    return target


def field_line(path: Path, field: str) -> int:
    """The 1-based line of ``field:`` in an approval file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line.startswith(f"{field}:"))


def test_validate_reports_every_broken_approval_file(signed: Signed) -> None:
    root, _, good = signed
    approvals = root / "approvals"
    (approvals / "broken.yaml").write_text(BROKEN_YAML, encoding="utf-8")
    (approvals / "list.yml").write_text("- a\n", encoding="utf-8")
    forged = copy_edited(good, "forged.yaml", "note: ''", "note: forged")
    unsigned = approvals / "unsigned.yaml"
    unsigned.write_text("".join(line for line in good.read_text().splitlines(keepends=True)
                                if not line.startswith("signature:")), encoding="utf-8")
    garbled = copy_edited(good, "garbled.yaml", "signature: ", "signature: AAAA")
    (approvals / "README.md").write_text("how we approve\n", encoding="utf-8")

    outcome = nx(root, "validate")

    assert outcome.code == 1
    assert outcome.err.splitlines() == [
        "approvals/broken.yaml:2:10: error: did not find expected ',' or ']' while parsing a flow sequence",
        (f"approvals/forged.yaml:{field_line(forged, 'signature')}:12: error: the signature on the "
         "approval of task 'ship' does not verify (the approval was altered after signing, or forged)"),
        (f"approvals/garbled.yaml:{field_line(garbled, 'signature')}:12: error: approval signature is "
         "not a base64 Ed25519 signature"),
        "approvals/list.yml:1:1: error: an approval must be a mapping of its fields",
        "approvals/unsigned.yaml:1:1: error: approval lacks signature",
        "5 errors in 5 files",
    ]


def test_validate_given_an_approval_file_checks_that_file(signed: Signed) -> None:
    root, _, good = signed
    (root / "approvals" / "broken.yaml").write_text(BROKEN_YAML, encoding="utf-8")

    outcome = nx(root, "validate", "approvals/broken.yaml")
    assert (outcome.code, outcome.out) == (1, "")
    assert outcome.err.splitlines() == [
        "approvals/broken.yaml:2:10: error: did not find expected ',' or ']' while parsing a flow sequence",
        "1 error in 1 file",
    ]
    outcome = nx(root, "validate", f"approvals/{good.name}")
    assert (outcome.code, outcome.out, outcome.err) == (0, "ok: 1 file valid\n", "")
    assert nx(root, "validate", "missions").code == 0, "other folders leave approvals/ alone"


def test_an_approval_by_an_operator_policy_no_longer_declares_is_an_error(signed: Signed) -> None:
    root, _, good = signed
    token = (root.parent / "home/.config/nexusmon/operator.pub").read_text().split()[-1]
    other = keygen(root, "--key", str(root.parent / "carol.key"))
    write(root, "policies/operators.yaml", f"""
        policy: operators
        operators:
          - {{name: carol, public_key: "{other}", may_approve: [A, S]}}
        """)

    outcome = nx(root, "validate")

    assert outcome.code == 1
    assert outcome.err.splitlines() == [
        (f"approvals/{good.name}:{field_line(good, 'public_key')}:13: error: key {token[:16]}… "
         "is not declared by any operator in policies/"),
        "1 error in 1 file",
    ]


def test_a_broken_policy_does_not_make_every_approval_look_unknown(signed: Signed) -> None:
    root = signed.root
    (root / "policies/operators.yaml").write_text("policy: [unclosed\n", encoding="utf-8")
    outcome = nx(root, "validate")
    assert outcome.code == 1
    assert [line for line in outcome.err.splitlines() if line.startswith("approvals/")] == []


def test_doctor_fails_on_a_broken_approval_file(signed: Signed) -> None:
    root, _, good = signed
    code, doc = nx_json(root, "doctor")
    assert code == 0
    assert [c for c in doc["checks"] if c["name"] == "approvals"] == [{
        "name": "approvals", "status": "ok", "hint": "",
        "detail": "1 approval file(s) verify against the policy operators",
    }]
    forged = copy_edited(good, "forged.yaml", "note: ''", "note: forged")

    code, doc = nx_json(root, "doctor")

    assert code == 1
    (check,) = [c for c in doc["checks"] if c["name"] == "approvals"]
    assert check["status"] == "fail"
    assert check["detail"] == (
        "1 approval file problem(s), runs ignore these files: "
        f"approvals/forged.yaml:{field_line(forged, 'signature')}:12: error: the signature on the "
        "approval of task 'ship' does not verify (the approval was altered after signing, or forged)"
    )
    assert check["hint"] == ("`nexusmon validate approvals/` lists them; sign again with "
                             "`nexusmon approve RUN TASK --out approvals/`, or delete the file")


def test_a_held_run_names_the_approval_files_it_ignored(signed: Signed) -> None:
    root, _, good = signed
    forged = copy_edited(good, "forged.yaml", "note: ''", "note: forged")
    good.unlink()

    outcome = nx(root, "run", "release")

    assert outcome.code == 3
    note = ("waiting for an operator approval; ignored invalid approval file(s) approvals/forged.yaml "
            "(`nexusmon validate approvals/` says why)")
    assert f"  HELD      ship: {note}" in outcome.out.splitlines()
    _, doc = nx_json(root, "show", "last")
    assert {t["id"]: t for t in doc["tasks"]}["ship"]["error"] == note
    refused = [e["payload"]["problem"] for e in audit_events(root, "approval.refused")]
    assert refused[-1] == (
        f"approvals/forged.yaml:{field_line(forged, 'signature')}:12: error: the signature on the "
        "approval of task 'ship' does not verify (the approval was altered after signing, or forged)"
    )


def test_approve_out_elsewhere_says_runs_read_only_approvals(signed: Signed) -> None:
    root, _, good = signed
    good.unlink()
    code, doc = nx_json(root, "run", "release")
    assert code == 3
    outcome = nx(root, "approve", doc["run_id"], "ship", "--out", "review/pending")
    assert outcome.code == 0, outcome.err
    (written,) = (root / "review/pending").glob("*.yaml")
    assert outcome.out.splitlines()[-1] == (
        f"wrote review/pending/{written.name} (runs read approval files only from approvals/: "
        "move it there and commit it so runs of the same plan proceed)"
    )
