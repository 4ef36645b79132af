"""The audit trail's hash chain: how a record is hashed and how a chain is verified.

Each record's ``hash`` is ``sha256(prev_hash + canonical_json(record))`` over
its ``seq``, ``at``, ``kind``, ``run_id``, ``task_id`` and ``payload``; the
first record's ``prev_hash`` is 64 zeros.  The ledger also keeps the chain
head (last ``seq`` and ``hash``) in ``audit_head``, so removing records at the
tail is detected too.  Pure functions only: the ledger does the I/O.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from msgspec import Struct

from nexusmon.store.records import AuditEvent

GENESIS = "0" * 64

#: A stored audit record as read from SQLite: the columns of ``AuditEvent.COLUMNS``,
#: with the payload still as its JSON text.
StoredRecord = Sequence[Any]


#: The stored chain head: the rows of table ``audit_head`` (exactly one when intact).
StoredHead = Sequence[Sequence[Any]]


class AuditProblem(Struct, frozen=True):
    """The first record at which the chain is broken, and why.

    ``seq`` is None when no record is at fault: the chain head or a whole table is.
    """

    seq: int | None
    reason: str

    def __str__(self) -> str:
        return self.reason if self.seq is None else f"audit record {self.seq}: {self.reason}"


class UnreadableEvent(AuditEvent, frozen=True):
    """A stored record whose payload is no longer a JSON object (it was edited).

    ``payload`` is empty; ``stored_payload`` is what the column holds, as text.
    """

    stored_payload: str = ""


def payload_of(stored: Any) -> dict[str, Any] | None:
    """A stored payload decoded; None when it is not a JSON object (the record was edited)."""
    if not isinstance(stored, str):
        return None
    try:
        value = json.loads(stored)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def event_of(record: StoredRecord) -> AuditEvent:
    """A stored record, decoded; an :class:`UnreadableEvent` when its payload is damaged."""
    seq, at, kind, run_id, task_id, stored, prev_hash, digest = record
    payload = payload_of(stored)
    if payload is not None:
        return AuditEvent(seq, at, kind, run_id, task_id, payload, prev_hash, digest)
    return UnreadableEvent(seq, at, kind, run_id, task_id, {}, prev_hash, digest, _as_text(stored))


def _as_text(stored: Any) -> str:
    if stored is None:
        return "NULL"
    if isinstance(stored, bytes):
        return stored.decode("utf-8", "replace")
    return str(stored)


# Encoders built once: json.dumps builds a new one on every call that passes options.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_PAYLOAD = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
_TEXT = json.JSONEncoder(ensure_ascii=False).encode


@functools.lru_cache(maxsize=4096)
def _quoted(value: str | None) -> str:
    """JSON for a kind, run id or task id: few distinct values, each hashed many times."""
    return _TEXT(value)


def _number(value: float) -> str:
    """JSON for a timestamp, as json.dumps writes it (a finite float is its repr)."""
    if type(value) is float and math.isfinite(value):
        return repr(value)
    return json.dumps(value)


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, UTF-8 kept as is: one text per value."""
    return _CANONICAL(value)


def payload_text(payload: Any) -> str:
    """The canonical JSON stored for a payload (values JSON cannot express become text)."""
    return _PAYLOAD(payload)


def record_hash(
    prev_hash: str,
    seq: int,
    at: float,
    kind: str,
    run_id: str | None,
    task_id: str | None,
    payload: Any,
) -> str:
    """The hash of one record, chained to the previous record's hash."""
    return text_hash(prev_hash, seq, at, kind, run_id, task_id, canonical_json(payload))


def text_hash(
    prev_hash: str, seq: int, at: float, kind: str, run_id: str | None, task_id: str | None,
    payload_text: str,
) -> str:
    """:func:`record_hash` over a payload already in canonical JSON (as stored).

    The canonical record is assembled around the stored text instead of parsing
    and re-encoding it: the same bytes, one JSON round trip less per record.
    """
    body = (
        f'{{"at":{_number(at)},"kind":{_quoted(kind)},"payload":{payload_text},'
        f'"run_id":{_quoted(run_id)},"seq":{seq},"task_id":{_quoted(task_id)}}}'
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"record {first} is missing (removed)"
    return f"records {first} to {last} are missing (removed)"


def _record_problem(record: StoredRecord, prev_seq: int, prev_hash: str) -> AuditProblem | None:
    seq, at, kind, run_id, task_id, text, stored_prev, stored_hash = record
    if not isinstance(seq, int):
        return AuditProblem(prev_seq + 1, f"seq after {prev_seq} is {seq!r}, not a number (edited)")
    if seq != prev_seq + 1:
        return AuditProblem(prev_seq + 1, _missing(prev_seq + 1, seq - 1))
    if stored_prev != prev_hash:
        reason = "prev_hash does not match the previous record (removed or reordered records)"
        return AuditProblem(seq, reason)
    if not isinstance(text, str):
        return AuditProblem(seq, "payload is not valid JSON (edited)")
    if text_hash(prev_hash, seq, at, kind, run_id, task_id, text) != stored_hash:
        if not _is_json(text):
            return AuditProblem(seq, "payload is not valid JSON (edited)")
        return AuditProblem(seq, "contents do not match the record's hash (edited)")
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _head_problem(heads: StoredHead, last_seq: int, last_hash: str) -> AuditProblem | None:
    if not heads:
        return AuditProblem(None, "the chain head (table audit_head) is missing")
    if len(heads) > 1:
        # nexusmon keeps exactly one row; the schema cannot forbid a second one.
        return AuditProblem(None, f"the chain head (table audit_head) has {len(heads)} rows "
                                  "instead of one (edited)")
    head_seq, head_hash = heads[0]
    if not isinstance(head_seq, int):
        return AuditProblem(None, f"the chain head (table audit_head) has seq {head_seq!r}, not a number (edited)")
    if head_seq > last_seq:
        return AuditProblem(last_seq + 1, _missing(last_seq + 1, head_seq))
    if head_seq < last_seq:
        return AuditProblem(head_seq + 1, "record was added behind the chain head's back")
    if head_hash != last_hash:
        return AuditProblem(last_seq, "hash does not match the chain head (edited)")
    return None


def verify_chain(records: Iterable[StoredRecord], heads: StoredHead) -> AuditProblem | None:
    """The first broken record of a chain given in ``seq`` order; None when intact.

    ``heads`` are the stored ``(seq, hash)`` rows of the chain head: one row,
    naming the last record, when intact.
    """
    prev_seq, prev_hash = 0, GENESIS
    for record in records:
        problem = _record_problem(record, prev_seq, prev_hash)
        if problem is not None:
            return problem
        prev_seq, prev_hash = record[0], record[7]
    return _head_problem(heads, prev_seq, prev_hash)
