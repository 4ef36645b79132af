from __future__ import annotations

import base64
import json

import pytest
import yaml
from msgspec.structs import replace

from nexusmon.govern.approvals import (
    Approval,
    ApprovalRefused,
    applies_to,
    read_approval_files,
    sign,
    signing_payload,
    verify,
    write_approval_file,
)
from nexusmon.govern.keys import generate_keypair, load_private_key
from nexusmon.spec.document import Document
from nexusmon.spec.model import Operator, Rank

DIGEST = "sha256:" + "ab12" * 16
OTHER_DIGEST = "sha256:" + "cd34" * 16


def _operator(name, token, *ranks):
    return Operator(
        doc=Document("policies/p.yaml", None, ""), at=(), name=name, public_key=token,
        may_approve=tuple(ranks),
    )


@pytest.fixture
def alice(tmp_path):
    path = tmp_path / "alice" / "operator.key"
    token = generate_keypair(path, name="alice")
    return load_private_key(path), token


def _sign(key, **overrides):
    args = {
        "run_id": "20250101T000000-abcd", "task_id": "ship", "mission": "release", "plan_digest": DIGEST,
        "verdict": "approve", "operator": "alice", "rank": "A", "note": "looks good",
        "at": "2025-01-01T00:00:00Z",
    }
    args.update(overrides)
    return sign(key, **args)


def test_signed_approval_verifies_and_names_the_operator(alice):
    key, token = alice
    ops = [_operator("bob", "ed25519:" + base64.b64encode(b"b" * 32).decode(), Rank.S),
           _operator("alice", token, Rank.A, Rank.S)]

    approval = _sign(key)

    assert approval.public_key == token
    assert approval.verdict == "approve" and approval.approved
    assert verify(approval, ops).name == "alice"


def test_sign_fills_in_the_time_in_utc(alice):
    approval = _sign(alice[0], at=None)
    assert approval.at.endswith("Z") and approval.at[4] == "-" and approval.at[10] == "T"


def test_reject_verdict_and_rank_enum_are_recorded(alice):
    key, token = alice
    approval = _sign(key, verdict="reject", rank=Rank.S)
    assert (approval.verdict, approval.rank, approval.approved) == ("reject", "S", False)
    assert verify(approval, [_operator("alice", token, Rank.S)]).name == "alice"


def test_signing_payload_is_canonical_json_without_the_signature(alice):
    approval = _sign(alice[0])
    payload = json.loads(signing_payload(approval))
    assert "signature" not in payload
    for name in ("plan_digest", "verdict", "rank", "task_id", "mission", "run_id", "note", "at"):
        assert payload[name] == getattr(approval, name)
    assert signing_payload(approval) == json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@pytest.mark.parametrize(
    "change",
    [
        {"note": "looks good!"},
        {"plan_digest": OTHER_DIGEST},
        {"rank": "B"},
        {"verdict": "reject"},
        {"task_id": "announce"},
        {"run_id": "20250101T000000-ffff"},
        {"at": "2025-01-02T00:00:00Z"},
    ],
)
def test_an_approval_edited_after_signing_is_refused(alice, change):
    key, token = alice
    edited = replace(_sign(key), **change)
    with pytest.raises(ApprovalRefused, match="does not verify"):
        verify(edited, [_operator("alice", token, Rank.A, Rank.B, Rank.S)])


def test_a_flipped_signature_byte_is_refused(alice):
    key, token = alice
    approval = _sign(key)
    raw = bytearray(base64.b64decode(approval.signature))
    raw[10] ^= 0x01
    forged = replace(approval, signature=base64.b64encode(bytes(raw)).decode())
    with pytest.raises(ApprovalRefused) as info:
        verify(forged, [_operator("alice", token, Rank.A)])
    assert str(info.value) == (
        "the signature on the approval of task 'ship' does not verify "
        "(the approval was altered after signing, or forged)"
    )


def test_a_signature_that_is_not_base64_is_refused(alice):
    key, token = alice
    broken = replace(_sign(key), signature="%%%")
    with pytest.raises(ApprovalRefused, match="not a base64 Ed25519 signature"):
        verify(broken, [_operator("alice", token, Rank.A)])


def test_swapping_in_the_operators_key_does_not_make_a_stranger_valid(alice, tmp_path):
    _key, token = alice
    stranger_path = tmp_path / "stranger" / "operator.key"
    generate_keypair(stranger_path)
    by_stranger = _sign(load_private_key(stranger_path))
    with pytest.raises(ApprovalRefused, match="does not verify"):
        verify(replace(by_stranger, public_key=token), [_operator("alice", token, Rank.A)])


def test_a_key_no_operator_declares_is_refused(alice, tmp_path):
    _, token = alice
    stranger_path = tmp_path / "stranger" / "operator.key"
    stranger_token = generate_keypair(stranger_path)
    approval = _sign(load_private_key(stranger_path))
    with pytest.raises(ApprovalRefused) as info:
        verify(approval, [_operator("alice", token, Rank.A)])
    assert str(info.value) == (
        f"key {stranger_token[:16]}… is not declared by any operator in policies/"
    )


def test_operator_name_must_match_the_key_owner(alice):
    key, token = alice
    approval = _sign(key, operator="mallory")
    with pytest.raises(ApprovalRefused) as info:
        verify(approval, [_operator("alice", token, Rank.A)])
    assert str(info.value) == f"approval names operator 'mallory' but key {token[:16]}… belongs to alice"


def test_rank_outside_may_approve_is_refused(alice):
    key, token = alice
    approval = _sign(key, rank="B")
    with pytest.raises(ApprovalRefused) as info:
        verify(approval, [_operator("alice", token, Rank.S, Rank.A)])
    assert str(info.value) == "alice may approve A, S; task 'ship' is rank B"


def test_operator_with_no_ranks_may_approve_nothing(alice):
    key, token = alice
    with pytest.raises(ApprovalRefused, match="alice may approve no rank; task 'ship' is rank A"):
        verify(_sign(key), [_operator("alice", token)])


def test_policy_key_in_url_safe_base64_still_matches(alice):
    key, token = alice
    urlsafe = token.replace("+", "-").replace("/", "_").rstrip("=")
    assert verify(_sign(key), [_operator("alice", urlsafe, Rank.A)]).name == "alice"


def test_bad_verdict_or_rank_cannot_be_signed(alice):
    with pytest.raises(ApprovalRefused, match="unknown verdict 'maybe'"):
        _sign(alice[0], verdict="maybe")
    with pytest.raises(ApprovalRefused, match="unknown rank 'Z'"):
        _sign(alice[0], rank="Z")


def test_applies_only_to_the_same_plan_and_run(alice):
    approval = _sign(alice[0])
    assert applies_to(approval, plan_digest=DIGEST, run_id=approval.run_id)
    assert not applies_to(approval, plan_digest=OTHER_DIGEST, run_id=approval.run_id)
    assert not applies_to(approval, plan_digest=DIGEST, run_id="20250202T000000-0000")
    # Approval files apply to any run of the same plan.
    assert applies_to(approval, plan_digest=DIGEST, run_id=None)
    assert not applies_to(approval, plan_digest=OTHER_DIGEST, run_id=None)


def test_approval_file_round_trip_still_verifies(alice, tmp_path):
    key, token = alice
    approval = _sign(key, task_id="deploy[eu,prod].apply", note="ok: ship it\nsecond line")
    directory = tmp_path / "ws" / "approvals"

    path = write_approval_file(directory, approval)

    assert path.parent == directory
    assert path.name == "release--deploy_eu_prod_.apply--ab12ab12ab12.yaml"
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["plan_digest"] == DIGEST
    loaded, problems = _load(directory.parent)
    assert problems == []
    assert loaded == [approval]
    assert verify(loaded[0], [_operator("alice", token, Rank.A)]).name == "alice"
    assert [p.name for p in directory.iterdir()] == [path.name]


def _load(root):
    """The approvals in ``root``/approvals/ and one error line per malformed file."""
    filed, problems = read_approval_files(root)
    return [item.approval for item in filed], [str(d) for d in problems]


def test_a_hand_edited_approval_file_loads_but_does_not_verify(alice, tmp_path):
    key, token = alice
    path = write_approval_file(tmp_path / "approvals", _sign(key))
    path.write_text(path.read_text(encoding="utf-8").replace("rank: A", "rank: S"), encoding="utf-8")
    (loaded,), problems = _load(tmp_path)
    assert problems == [] and loaded.rank == "S"
    with pytest.raises(ApprovalRefused, match="does not verify"):
        verify(loaded, [_operator("alice", token, Rank.A, Rank.S)])


def test_malformed_files_are_reported_not_raised(alice, tmp_path):
    directory = tmp_path / "approvals"
    good = write_approval_file(directory, _sign(alice[0]))
    (directory / "broken.yaml").write_text("run_id: [unclosed\n", encoding="utf-8")
    (directory / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    partial = yaml.safe_load(good.read_text(encoding="utf-8"))
    del partial["signature"]
    (directory / "partial.yml").write_text(yaml.safe_dump(partial), encoding="utf-8")
    (directory / "README.md").write_text("not an approval\n", encoding="utf-8")

    loaded, problems = _load(tmp_path)

    assert [a.plan_digest for a in loaded] == [DIGEST]
    assert len(problems) == 3
    assert problems[0].startswith("approvals/broken.yaml:2:1: error: ")
    assert problems[1] == "approvals/list.yaml:1:1: error: an approval must be a mapping of its fields"
    assert problems[2] == "approvals/partial.yml:1:1: error: approval lacks signature"


def test_wrong_field_types_and_unknown_fields_are_problems(alice, tmp_path):
    data = _sign(alice[0]).as_dict()
    directory = tmp_path / "approvals"
    directory.mkdir()
    (directory / "a.yaml").write_text(yaml.safe_dump({**data, "rank": 4}), encoding="utf-8")
    (directory / "b.yaml").write_text(yaml.safe_dump({**data, "extra": "x"}), encoding="utf-8")
    (directory / "c.yaml").write_text(yaml.safe_dump({**data, "verdict": "yes"}), encoding="utf-8")
    loaded, problems = _load(tmp_path)
    assert loaded == []
    name = directory.name
    assert problems == [
        f"{name}/a.yaml:1:1: error: approval field(s) rank must be text",
        f"{name}/b.yaml:1:1: error: approval has unknown field(s) extra",
        f"{name}/c.yaml:1:1: error: unknown verdict 'yes' (expected approve or reject)",
    ]


def test_missing_directory_means_no_approvals(tmp_path):
    assert _load(tmp_path) == ([], [])


def test_approval_is_immutable(alice):
    approval = _sign(alice[0])
    with pytest.raises(AttributeError):
        approval.note = "changed"  # type: ignore[misc]
    assert Approval(**approval.as_dict()) == approval
