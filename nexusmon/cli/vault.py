"""`nexusmon vault`: browse, compare, trace and review versioned artifacts."""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Iterator
from typing import Any

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, echo_json
from nexusmon.cli.load import existing_ledger, project_of, state_dir_of, when
from nexusmon.errors import UsageError
from nexusmon.store.records import ArtifactVersion
from nexusmon.store.vault import ArtifactNotFound, Vault, normalize, parse_ref


@contextlib.contextmanager
def _vault(ctx: click.Context) -> Iterator[Vault | None]:
    """The workspace's vault, or None when nothing has been stored yet."""
    project = project_of(ctx)
    with existing_ledger(state_dir_of(ctx, project)) as ledger:
        yield Vault(ledger, project.root) if ledger else None


def _get(vault: Vault | None, ref: str) -> tuple[Vault, ArtifactVersion]:
    """The vault and the version ``ref`` names; unknown paths and versions are usage errors."""
    path, version = parse_ref(ref)
    if vault is None:
        raise ArtifactNotFound(f"no artifact {normalize(path)} in the vault (nothing has run yet)")
    return vault, vault.get(path, version)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _version_json(record: ArtifactVersion) -> dict[str, Any]:
    return {
        "path": record.path, "version": record.version, "ref": record.ref, "digest": record.digest,
        "size": record.size, "run_id": record.run_id, "task_id": record.task_id,
        "created_at": record.created_at, "review": record.review,
    }


@click.group()
def vault() -> None:
    """Browse versioned artifacts: a path's content change makes a new version (PATH@vN).

    \b
    Example:
      nexusmon vault ls
      nexusmon vault diff dist/notes.md@v1 dist/notes.md@v2
    """


@vault.command("ls")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def ls(ctx: click.Context, fmt: str) -> int:
    """List artifact paths with their newest version.

    Each line: PATH@vN, size, the task and the run that stored it.

    \b
    Example:
      nexusmon vault ls --format json
    """
    with _vault(ctx) as found:
        records = found.ls() if found else []
    if fmt == "json":
        echo_json({"artifacts": [_version_json(r) for r in records]})
        return 0
    if not records:
        click.echo("the vault is empty: no task has stored an artifact yet")
    for r in records:
        review = f"  [{r.review}]" if r.review else ""
        click.echo(f"{r.ref}  {_size(r.size)}  {r.task_id or '-'}  {r.run_id or '-'}{review}")
    return 0


@vault.command("show")
@click.argument("ref", metavar="PATH[@vN]")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def show(ctx: click.Context, ref: str, fmt: str) -> int:
    """Show one version: metadata, lineage, reviews.

    The newest version when PATH has no @vN; other versions are listed too.

    \b
    Example:
      nexusmon vault show dist/notes.md@v2
    """
    with _vault(ctx) as found:
        found, record = _get(found, ref)
        doc = {**_version_json(record), "lineage": found.lineage(record),
               "reviews": [_review_json(r) for r in found.reviews(record)],
               "versions": [v.version for v in found.versions(record.path)]}
    if fmt == "json":
        echo_json(doc)
        return 0
    click.echo(f"{record.ref}  {record.digest}  {_size(record.size)}")
    click.echo(f"stored   {when(record.created_at)} by task {record.task_id or '-'} "
               f"of run {record.run_id or '-'}")
    click.echo(f"versions {', '.join(f'v{v}' for v in doc['versions'])}")
    _print_lineage(doc["lineage"], indent="  ", header="lineage:")
    _print_reviews(doc["reviews"])
    return 0


def _review_json(review: Any) -> dict[str, Any]:
    return {"verdict": review.verdict, "note": review.note, "operator": review.operator,
            "at": review.at}


def _print_reviews(reviews: list[dict[str, Any]]) -> None:
    if not reviews:
        click.echo("reviews: none")
        return
    click.echo("reviews:")
    for r in reviews:
        note = f": {r['note']}" if r["note"] else ""
        click.echo(f"  {when(r['at'])}  {r['verdict']} by {r['operator'] or '-'}{note}")


@vault.command("cat")
@click.argument("ref", metavar="PATH[@vN]")
@click.pass_context
def cat(ctx: click.Context, ref: str) -> int:
    """Write one version's exact bytes to stdout.

    The newest version when PATH has no @vN.

    \b
    Example:
      nexusmon vault cat dist/notes.md@v1 > notes-v1.md
    """
    with _vault(ctx) as found:
        found, record = _get(found, ref)
        data = found.read(record)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


@vault.command("diff")
@click.argument("old", metavar="PATH@vA")
@click.argument("new", metavar="PATH@vB")
@click.pass_context
def diff(ctx: click.Context, old: str, new: str) -> int:
    """Print a unified diff between two versions.

    A PATH without @vN names its newest version.

    \b
    Example:
      nexusmon vault diff dist/notes.md@v1 dist/notes.md@v2
    """
    with _vault(ctx) as found:
        found, a = _get(found, old)
        b = _get(found, new)[1]
        text = found.diff(a, b)
    click.echo(text or f"{a.ref} and {b.ref} are identical", nl=not text)
    return 0


@vault.command("lineage")
@click.argument("ref", metavar="PATH[@vN]")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.pass_context
def lineage(ctx: click.Context, ref: str, fmt: str) -> int:
    """Show where a version came from.

    Run, task, mission file and digest, git commit, source digests and the
    upstream artifact versions it was built from.

    \b
    Example:
      nexusmon vault lineage dist/notes.md --format json
    """
    with _vault(ctx) as found:
        found, record = _get(found, ref)
        doc = found.lineage(record)
    if fmt == "json":
        echo_json(doc)
    else:
        _print_lineage(doc, indent="", header=None)
    return 0


def _print_lineage(doc: dict[str, Any], indent: str, header: str | None) -> None:
    if header:
        click.echo(header)
    mission = doc.get("mission") or "-"
    where = ", ".join(str(v) for v in (doc.get("mission_file"), doc.get("mission_digest")) if v)
    rows = [
        ("artifact", f"{doc['artifact']}  {doc['digest']}"),
        ("run", doc.get("run_id") or "-"),
        ("task", doc.get("task_id") or doc.get("task") or "-"),
        ("mission", f"{mission} ({where})" if where else mission),
        ("git", doc.get("git_commit") or "-"),
    ]
    rows += [("source", line) for line in _sources(doc.get("sources"))]
    rows += [("upstream", line) for line in _upstream(doc.get("upstream"))]
    rows += [("review", doc["review"])] if doc.get("review") else []
    for label, value in rows:
        click.echo(f"{indent}{label:<9}{value}")


def _sources(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{path}  {digest}" for path, digest in sorted(value.items())]
    if isinstance(value, list):
        return [str(item) for item in value]
    return [] if value is None else [str(value)]


def _upstream(value: Any) -> list[str]:
    if not isinstance(value, list):
        return [] if value is None else [str(value)]
    lines = []
    for item in value:
        if isinstance(item, dict) and "path" in item:
            lines.append(f"{item['path']}@v{item.get('version', '?')}"
                         + (f"  ({item['task']})" if item.get("task") else ""))
        else:
            lines.append(str(item))
    return lines


@vault.command("review")
@click.argument("ref", metavar="PATH@vN")
@click.option("--accept", is_flag=True, help="Accept this version.")
@click.option("--reject", is_flag=True, help="Reject this version.")
@click.option("--note", help="Why.")
@click.option("--operator", help="Who reviews (default: the login name).")
@click.pass_context
def review(
    ctx: click.Context, ref: str, accept: bool, reject: bool, note: str | None, operator: str | None,
) -> int:
    """Accept or reject one artifact version.

    The review is recorded in the ledger and the audit trail.

    \b
    Example:
      nexusmon vault review dist/notes.md@v2 --accept --note "checked the links"
    """
    if accept == reject:
        raise UsageError("pass either --accept or --reject" if accept else "pass --accept or --reject")
    verdict = "accept" if accept else "reject"
    with _vault(ctx) as found:
        found, record = _get(found, ref)
        if parse_ref(ref)[1] is None:
            raise UsageError(f"name the version to review: {record.ref} is the newest")
        who = operator or _login_name()
        found.review(record, verdict, note, who)
    verb = "accepted" if verdict == "accept" else "rejected"
    click.echo(f"{verb} {record.ref}" + (f" as {who}" if who else ""))
    return 0


def _login_name() -> str | None:
    """$USER and friends (what getpass reads), else the account's name."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no variable and no passwd entry
        return None
