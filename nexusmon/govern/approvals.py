"""Signed operator approvals: sign, verify against policy operators, store as files.

An approval is an Ed25519 signature over a canonical JSON payload naming the
task's plan digest, verdict, rank, task, mission, run, note and time. Change the
task and its plan digest changes, so the approval no longer applies. Approval
files committed under ``approvals/`` apply to any run of the same plan; a file
that is malformed or does not verify is reported with its location and ignored.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct
from msgspec.structs import asdict, fields

from nexusmon.errors import Diagnostic, InvalidFiles, Location, NexusmonError
from nexusmon.govern.keys import (
    OperatorKeyError,
    canonical_token,
    parse_public_token,
    public_token,
    short_token,
)
from nexusmon.spec.model import Operator, Rank
from nexusmon.util.atomic import write_atomic

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: The one folder runs read approval files from (workspace-relative).
APPROVALS_DIR = "approvals"
#: Binds a signature to this use, so a key's signature over other data never reads as an approval.
PAYLOAD_TYPE = "nexusmon.approval.v1"

_FILE_HEADER = "# nexusmon signed approval: any edit voids the signature\n"
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class ApprovalRefused(NexusmonError):
    """An approval that is forged, altered, unauthorised or malformed; ``field`` is the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Verdict(str, enum.Enum):
    APPROVE = "approve"
    REJECT = "reject"


class Approval(Struct, frozen=True):
    """One operator's signed verdict on one task's plan digest."""

    run_id: str
    task_id: str
    mission: str
    plan_digest: str
    verdict: str  # "approve" | "reject"
    operator: str  # the operator name from policy
    public_key: str  # ed25519:<base64>
    rank: str  # E..S, the task's effective rank when signed
    note: str
    at: str  # ISO 8601 UTC
    signature: str  # base64 Ed25519 signature over signing_payload()

    @property
    def approved(self) -> bool:
        return self.verdict == Verdict.APPROVE.value

    def as_dict(self) -> dict[str, str]:
        """Plain fields, in declaration order (for JSON, YAML and the ledger)."""
        return asdict(self)


FIELD_NAMES = tuple(f.name for f in fields(Approval))


def signing_payload(approval: Approval) -> bytes:
    """Canonical JSON (sorted keys, compact, UTF-8) of every field but the signature."""
    body: dict[str, str] = {k: v for k, v in approval.as_dict().items() if k != "signature"}
    body["type"] = PAYLOAD_TYPE
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def utc_now() -> str:
    """The current time as ISO 8601 UTC with a ``Z`` suffix, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(
    key: Ed25519PrivateKey,
    *,
    run_id: str,
    task_id: str,
    mission: str,
    plan_digest: str,
    verdict: Verdict | str,
    operator: str,
    rank: Rank | str,
    note: str = "",
    at: str | None = None,
) -> Approval:
    """Sign a verdict on one task's plan digest with ``key``."""
    unsigned = Approval(
        run_id=run_id,
        task_id=task_id,
        mission=mission,
        plan_digest=plan_digest,
        verdict=_verdict_text(verdict),
        operator=operator,
        public_key=public_token(key),
        rank=_rank_text(rank),
        note=note,
        at=at if at is not None else utc_now(),
        signature="",
    )
    signature = key.sign(signing_payload(unsigned))
    return _replace_signature(unsigned, base64.b64encode(signature).decode("ascii"))


def _replace_signature(approval: Approval, signature: str) -> Approval:
    return Approval(**{**approval.as_dict(), "signature": signature})


def _verdict_text(verdict: Verdict | str) -> str:
    try:
        return Verdict(verdict).value
    except ValueError:
        raise ApprovalRefused(f"unknown verdict {verdict!r} (expected approve or reject)") from None


def _rank_text(rank: Rank | str) -> str:
    if isinstance(rank, Rank):
        return rank.name
    if rank not in Rank.__members__:
        raise ApprovalRefused(f"unknown rank {rank!r} (expected one of E, D, C, B, A, S)")
    return rank


def verify(approval: Approval, operators: Sequence[Operator], rank: Rank | None = None) -> Operator:
    """The policy operator who validly signed ``approval``; raise `ApprovalRefused` otherwise.

    With ``rank`` (the task's effective rank now) the approval must have been signed for that
    rank: the signer writes the ``rank`` field, so it proves nothing about the task by itself.
    """
    _check_signature(approval)
    operator = _signing_operator(approval, operators)
    if rank is not None:
        check_rank(approval, rank)
    rank = Rank[_rank_text(approval.rank)]
    if rank not in operator.may_approve:
        raise ApprovalRefused(
            f"{operator.name} may approve {_rank_list(operator.may_approve)}; "
            f"task '{approval.task_id}' is rank {rank.name}",
            "rank",
        )
    return operator


def check_rank(approval: Approval, rank: Rank) -> None:
    """Refuse ``approval`` unless it was signed for ``rank``, the task's effective rank."""
    if approval.rank != rank.name:
        raise ApprovalRefused(
            f"the approval of task '{approval.task_id}' was signed for rank {approval.rank}, "
            f"but the task is rank {rank.name}",
            "rank",
        )


def _check_signature(approval: Approval) -> None:
    from cryptography.exceptions import InvalidSignature

    try:
        key = parse_public_token(approval.public_key)
    except OperatorKeyError as exc:
        raise ApprovalRefused(f"approval of task '{approval.task_id}' carries a bad key: {exc}",
                              "public_key") from None
    _verdict_text(approval.verdict)
    signature = _decode_signature(approval.signature)
    try:
        key.verify(signature, signing_payload(approval))
    except InvalidSignature:
        raise ApprovalRefused(
            f"the signature on the approval of task '{approval.task_id}' does not verify "
            "(the approval was altered after signing, or forged)",
            "signature",
        ) from None


def _decode_signature(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise ApprovalRefused("approval signature is not a base64 Ed25519 signature", "signature")
    return raw


def _signing_operator(approval: Approval, operators: Sequence[Operator]) -> Operator:
    token = canonical_token(approval.public_key)
    holders = [op for op in operators if _same_key(op.public_key, token)]
    if not holders:
        raise ApprovalRefused(
            f"key {short_token(approval.public_key)} is not declared by any operator in policies/",
            "public_key",
        )
    named = [op for op in holders if op.name == approval.operator]
    if not named:
        owners = ", ".join(sorted({op.name for op in holders}))
        raise ApprovalRefused(
            f"approval names operator '{approval.operator}' but key "
            f"{short_token(approval.public_key)} belongs to {owners}",
            "operator",
        )
    return named[0]


def _same_key(declared: str, token: str) -> bool:
    try:
        return canonical_token(declared) == token
    except OperatorKeyError:
        return False  # a malformed policy key is the policy validator's error to report


def _rank_list(ranks: Sequence[Rank]) -> str:
    return ", ".join(r.name for r in sorted(set(ranks))) or "no rank"


def applies_to(approval: Approval, *, plan_digest: str, run_id: str | None) -> bool:
    """Whether ``approval`` covers this plan; with ``run_id`` it must also be from that run."""
    if approval.plan_digest != plan_digest:
        return False
    return run_id is None or approval.run_id == run_id


def approval_from_mapping(data: Any) -> Approval:
    """An `Approval` from plain data (a file or a ledger row); `ApprovalRefused` when malformed."""
    if not isinstance(data, Mapping):
        raise ApprovalRefused("an approval must be a mapping of its fields")
    missing = [name for name in FIELD_NAMES if name not in data]
    if missing:
        raise ApprovalRefused(f"approval lacks {', '.join(missing)}")
    unknown = sorted(set(data) - set(FIELD_NAMES))
    if unknown:
        raise ApprovalRefused(f"approval has unknown field(s) {', '.join(map(str, unknown))}")
    not_text = [name for name in FIELD_NAMES if not isinstance(data[name], str)]
    if not_text:
        raise ApprovalRefused(f"approval field(s) {', '.join(not_text)} must be text")
    _verdict_text(data["verdict"])
    _rank_text(data["rank"])
    return Approval(**{name: data[name] for name in FIELD_NAMES})


def approval_file_name(approval: Approval) -> str:
    """``<mission>--<task>--<digest[:12]>.yaml`` with characters unsafe in file names replaced."""
    digest = approval.plan_digest.split(":", 1)[-1]
    parts = (_safe_part(approval.mission, 60), _safe_part(approval.task_id, 120), _safe_part(digest[:12], 12))
    return "--".join(parts) + ".yaml"


def _safe_part(text: str, limit: int) -> str:
    safe = _UNSAFE_NAME_CHARS.sub("_", text).lstrip(".")
    return safe[:limit] or "_"


def write_approval_file(directory: Path, approval: Approval) -> Path:
    """Write ``approval`` as YAML into ``directory`` (created if needed), atomically."""
    import yaml  # ~12 ms, kept off the start of commands that read no YAML (see spec.doccache)

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / approval_file_name(approval)
    text = _FILE_HEADER + yaml.safe_dump(approval.as_dict(), sort_keys=False, allow_unicode=True)
    write_atomic(path, text.encode("utf-8"))
    return path


class FiledApproval(Struct, frozen=True):
    """An approval read from a file, with where each field's value sits in that file."""

    path: str  # workspace-relative, e.g. approvals/deploy--ship--9e22800d5200.yaml
    approval: Approval
    where: dict[str, Location]

    def locate(self, field: str | None) -> Location:
        return self.where.get(field or "", Location(self.path))


def read_approval_files(root: Path) -> tuple[list[FiledApproval], list[Diagnostic]]:
    """Every well-formed file in ``approvals/`` and a located error per malformed one."""
    return _read_folder(root / APPROVALS_DIR, APPROVALS_DIR)


def check_approval_files(
    root: Path, operators: Sequence[Operator],
) -> tuple[list[FiledApproval], list[Diagnostic]]:
    """The files in ``approvals/`` that verify against ``operators``; a located error per other file."""
    filed, problems = read_approval_files(root)
    valid = []
    for item in filed:
        try:
            verify(item.approval, operators)
        except ApprovalRefused as exc:
            problems.append(Diagnostic(item.locate(exc.field), str(exc)))
            continue
        valid.append(item)
    return valid, sorted(problems, key=lambda d: (d.location.path, d.location.line, d.location.col))


def _read_folder(directory: Path, shown_dir: str) -> tuple[list[FiledApproval], list[Diagnostic]]:
    if not directory.is_dir():
        return [], []
    from nexusmon.spec.yamlload import read_yaml  # PyYAML: see write_approval_file

    filed: list[FiledApproval] = []
    problems: list[Diagnostic] = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")):
        if not path.is_file():
            continue
        shown = f"{shown_dir}/{path.name}"
        try:
            document = read_yaml(path, shown)
            approval = approval_from_mapping(document.data)
        except InvalidFiles as exc:
            problems.extend(exc.diagnostics)
            continue
        except ApprovalRefused as exc:  # the shape of the whole file: reported at its start
            problems.append(Diagnostic(Location(shown), str(exc)))
            continue
        where = {name: document.locate((name,)) for name in FIELD_NAMES}
        filed.append(FiledApproval(shown, approval, where))
    return filed, problems
