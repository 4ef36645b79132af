"""`nexusmon audit`: list the hash-chained audit trail, or verify it."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, echo_json
from nexusmon.cli.load import existing_ledger, project_of, state_dir_of, when
from nexusmon.engine.report import find_run
from nexusmon.errors import UsageError
from nexusmon.store.audit import UnreadableEvent
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import AuditEvent

PAYLOAD_WIDTH = 160
KIND_WIDTH = 22
#: Payload keys shown first: what a reader of the trail looks for.
FIRST_KEYS = ("reason", "problem", "status", "verdict", "operator", "note", "error", "path", "version")
_LONG_TOKEN = re.compile(r"\b(sha256:[0-9a-f]{12})[0-9a-f]{52}\b|\b(ed25519:[A-Za-z0-9+/_-]{10})[A-Za-z0-9+/_=-]+")


@click.group(invoke_without_command=True)
@click.option("--run", "run_ref", metavar="RUN", help="Only events of this run (an id, a prefix, or `last`).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N events.")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def audit(ctx: click.Context, run_ref: str | None, limit: int | None, fmt: str) -> int:
    """Print the audit trail, oldest first: run and task events, decisions, approvals,
    reviews, artifacts, omens.

    A record whose payload is no longer JSON is printed with its stored text and a
    warning on stderr; printing checks nothing else (`audit verify` does).

    \b
    Example:
      nexusmon audit --run last
      nexusmon audit verify
    """
    if ctx.invoked_subcommand is not None:
        return 0
    with existing_ledger(state_dir_of(ctx, project_of(ctx))) as ledger:
        events = _events(ledger, run_ref, limit)
    if fmt == "json":
        echo_json({"events": [_event_json(e) for e in events]})
    else:
        if not events:
            click.echo("no audit records yet")
        for e in events:
            click.echo(f"{e.seq:>6}  {_when(e.at)}  {e.kind:<{KIND_WIDTH}} {e.run_id or '-'}  "
                       f"{e.task_id or '-'}  {_shown_payload(e)}".rstrip())
    _warn_unreadable(events)
    return 0


def _events(ledger: Ledger | None, run_ref: str | None, limit: int | None) -> list[AuditEvent]:
    if ledger is None:
        if run_ref is not None:
            raise UsageError(f"no run '{run_ref}' (nothing has run yet)")
        return []
    run_id = find_run(ledger, run_ref).run_id if run_ref is not None else None
    return ledger.events(run_id=run_id, limit=limit)


def _event_json(e: AuditEvent) -> dict[str, Any]:
    doc = {"seq": e.seq, "at": e.at, "kind": e.kind, "run_id": e.run_id, "task_id": e.task_id,
           "payload": e.payload, "prev_hash": e.prev_hash, "hash": e.hash}
    if isinstance(e, UnreadableEvent):
        doc.update(payload=None, unreadable_payload=e.stored_payload)
    return doc


def _when(at: Any) -> str:
    """The record's time; an edited, impossible one is shown as stored."""
    try:
        return when(at)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(at)


def _shown_payload(e: AuditEvent) -> str:
    if isinstance(e, UnreadableEvent):
        stored = e.stored_payload.replace("\n", " ")
        if len(stored) > PAYLOAD_WIDTH:
            stored = stored[: PAYLOAD_WIDTH - 1] + "…"
        return f"unreadable payload (not a JSON object): {stored}"
    return _compact(e.payload)


def _warn_unreadable(events: list[AuditEvent]) -> None:
    broken = [str(e.seq) for e in events if isinstance(e, UnreadableEvent)]
    if broken:
        more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
        records = f"record {broken[0]}" if len(broken) == 1 else f"records {', '.join(broken[:5])}{more}"
        click.echo(f"warning: audit {records}: payload is not a JSON object (edited?); "
                   "run `nexusmon audit verify` to check the chain", err=True)


def _compact(payload: dict[str, Any]) -> str:
    """`key=value` pairs on one line, cut to a readable width."""
    parts = []
    ordered = sorted(payload, key=lambda k: (FIRST_KEYS.index(k) if k in FIRST_KEYS else len(FIRST_KEYS), k))
    for key in ordered:
        value = payload[key]
        if value is None or value == "" or value == {} or value == []:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
        parts.append(f"{key}={shown}")
    text = _LONG_TOKEN.sub(lambda m: (m[1] or m[2]) + "…", " ".join(parts).replace("\n", " "))
    return text if len(text) <= PAYLOAD_WIDTH else text[: PAYLOAD_WIDTH - 1] + "…"


@audit.command("verify")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def verify(ctx: click.Context, fmt: str) -> int:
    """Check the audit hash chain.

    Exit 0 when intact; exit 1 naming the first edited, removed or reordered
    record (or damage to the ledger file).

    \b
    Example:
      nexusmon audit verify || echo "the audit trail was tampered with"
    """
    with existing_ledger(state_dir_of(ctx, project_of(ctx))) as ledger:
        problems, records = _check(ledger)
    if fmt == "json":
        echo_json({"intact": not problems, "records": records, "problems": problems})
    elif problems:
        for problem in problems:
            click.echo(f"audit chain broken: {problem}")
    else:
        click.echo(f"audit chain intact: {records} record{'' if records == 1 else 's'}")
    return 1 if problems else 0


def _check(ledger: Ledger | None) -> tuple[list[str], int]:
    """Problems found (first broken record, SQLite damage) and how many records there are."""
    if ledger is None:
        return [], 0
    damage = [f"ledger file is damaged: {line}" for line in ledger.integrity_check()]
    problem = ledger.verify_audit()
    return damage + ([str(problem)] if problem else []), ledger.audit_size()
