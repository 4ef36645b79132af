"""`doctor`: runtime self-checks as data, each with a fix hint.

Nothing here creates state: the ledger is opened only when ``ledger.db``
already exists, and the writability probe leaves no file behind.
"""

from __future__ import annotations

import enum
import hashlib
import os
import platform
import sqlite3
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

from msgspec import Struct

from nexusmon import __version__
from nexusmon.engine.gates import approval_file_problems
from nexusmon.engine.project import Project, validate
from nexusmon.errors import Diagnostic, NexusmonError
from nexusmon.govern.keys import (
    OperatorKeyError,
    default_key_path,
    key_permission_warning,
    parse_public_token,
)
from nexusmon.schemas import KINDS, schema_text
from nexusmon.store.ledger import LEDGER_FILE, Ledger
from nexusmon.store.vault import Vault

SAMPLE_OBJECTS = 50
FIRST_SHOWN = 3


class Status(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


class Check(Struct, frozen=True):
    name: str
    status: Status
    detail: str
    hint: str = ""

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "hint": self.hint}


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def fail(name: str, detail: str, hint: str) -> Check:
    return Check(name, Status.FAIL, detail, hint)


def info(name: str, detail: str, hint: str = "") -> Check:
    return Check(name, Status.INFO, detail, hint)


def version_check() -> Check:
    return info("nexusmon", f"nexusmon {__version__} on Python {platform.python_version()}")


def missing_workspace(message: str) -> Check:
    return fail("workspace", message, "")  # the message carries its own hint


def workspace_checks(project: Project, state_dir: Path) -> list[Check]:
    """Files, schemas, plugins, operators, and the state directory of ``project``."""
    checks = [
        ok("workspace", str(project.root)),
        files_check(project),
        schemas_check(project.root),
        plugins_check(project),
        operators_check(project),
        *approvals_checks(project),
        state_dir_check(state_dir),
    ]
    if (state_dir / LEDGER_FILE).is_file():
        checks += ledger_checks(state_dir, project.root)
    else:
        checks.append(info("ledger", f"no {LEDGER_FILE} in {state_dir} yet (no run recorded)"))
    return checks


def environment_checks(environ: Mapping[str, str]) -> list[Check]:
    """The local operator key and the LLM key: information, never failures."""
    return [local_key_check(environ), anthropic_check(environ)]


# ------------------------------------------------------------------ files


def files_check(project: Project) -> Check:
    problems = validate(project)
    if problems:
        shown = "; ".join(str(d) for d in problems[:FIRST_SHOWN])
        more = f" (and {len(problems) - FIRST_SHOWN} more)" if len(problems) > FIRST_SHOWN else ""
        return fail("files", f"{len(problems)} problem(s): {shown}{more}",
                    "run `nexusmon validate` for every located error")
    ws = project.workspace
    return ok("files", f"{len(ws.missions)} mission(s), {len(ws.runes)} rune(s), "
                       f"{len(ws.policies)} polic{'y' if len(ws.policies) == 1 else 'ies'} valid")


def schemas_check(root: Path) -> Check:
    folder = root / "schemas"
    if not folder.is_dir():
        return info("schemas", "no schemas/ folder (editors get no completion)",
                    "`nexusmon init` writes them")
    stale = [f"{kind}.schema.json" for kind in KINDS if not _same_schema(folder, kind)]
    if stale:
        return fail("schemas", f"differ from this nexusmon's or are missing: {', '.join(stale)}",
                    "delete them and run `nexusmon init` to write the shipped schemas")
    return ok("schemas", f"schemas/ matches nexusmon {__version__}")


def _same_schema(folder: Path, kind: str) -> bool:
    path = folder / f"{kind}.schema.json"
    try:
        return path.read_text(encoding="utf-8") == schema_text(kind)
    except (OSError, UnicodeDecodeError):
        return False


def plugins_check(project: Project) -> Check:
    problems = project.registry.problems
    if problems:
        shown = "; ".join(f"{p.path}:{p.line}: {p.message}" + (f" ({p.hint})" if p.hint else "")
                          for p in problems[:FIRST_SHOWN])
        return fail("plugins", f"{len(problems)} plugin(s) failed to load: {shown}",
                    "fix the plugin file or uninstall the package providing it")
    names = project.registry.names()
    return ok("plugins", f"{len(names)} workers available: {', '.join(names)}")


def operators_check(project: Project) -> Check:
    operators = [op for policy in project.workspace.policies for op in policy.operators]
    if not operators:
        return info("operators", "no operators declared in policies (nobody can sign approvals)")
    bad = []
    for op in operators:
        try:
            parse_public_token(op.public_key)
        except OperatorKeyError as exc:
            bad.append(f"{op.loc('public_key')}: operator '{op.name}': {exc}")
    if bad:
        return fail("operators", "; ".join(bad), "paste the `ed25519:...` line `nexusmon keygen` printed")
    return ok("operators", f"{len(operators)} operator key(s) parse: {', '.join(op.name for op in operators)}")


def approvals_checks(project: Project) -> list[Check]:
    """The files in approvals/ runs would ignore; nothing when there are no approval files."""
    files, problems = approval_file_problems(project)
    if not files:
        return []
    return [approvals_check(len(files), problems)]


def approvals_check(files: int, problems: list[Diagnostic]) -> Check:
    if problems:
        shown = "; ".join(str(d) for d in problems[:FIRST_SHOWN])
        more = f" (and {len(problems) - FIRST_SHOWN} more)" if len(problems) > FIRST_SHOWN else ""
        return fail("approvals",
                    f"{len(problems)} approval file problem(s), runs ignore these files: {shown}{more}",
                    "`nexusmon validate approvals/` lists them; sign again with "
                    "`nexusmon approve RUN TASK --out approvals/`, or delete the file")
    return ok("approvals", f"{files} approval file(s) verify against the policy operators")


# ------------------------------------------------------------------ state


def state_dir_check(state_dir: Path) -> Check:
    existing = state_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = _write_probe(existing)
    if problem:
        return fail("state dir", f"{existing} is not writable: {problem}",
                    "fix its permissions, or point --state-dir / NEXUSMON_STATE_DIR elsewhere")
    if existing != state_dir:
        return ok("state dir", f"{state_dir} will be created by the first run")
    return ok("state dir", f"{state_dir} is writable")


def _write_probe(folder: Path) -> str | None:
    try:
        fd, name = tempfile.mkstemp(prefix=".doctor-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def ledger_checks(state_dir: Path, root: Path) -> list[Check]:
    try:
        with Ledger(state_dir) as ledger:
            return [_guarded(name, fn, ledger, root) for name, fn in _LEDGER_CHECKS]
    except (NexusmonError, sqlite3.Error) as exc:
        return [fail("ledger", f"cannot open {state_dir / LEDGER_FILE}: {exc}",
                     "restore the state directory from a backup, or move it aside to start afresh")]


def _guarded(name: str, fn: Callable[[Ledger, Path], Check], ledger: Ledger, root: Path) -> Check:
    try:
        return fn(ledger, root)
    except (NexusmonError, sqlite3.Error, OSError) as exc:
        return fail(name, f"could not be checked: {exc}", "restore the state directory from a backup")


def integrity_check(ledger: Ledger, root: Path) -> Check:
    findings = ledger.integrity_check()
    if findings:
        return fail("ledger", f"SQLite integrity check: {'; '.join(findings[:FIRST_SHOWN])}",
                    "restore ledger.db from a backup (sqlite3 .recover may save some rows)")
    return ok("ledger", f"{ledger.path} passes SQLite's integrity check")


def schema_check(ledger: Ledger, root: Path) -> Check:
    drift = ledger.schema_drift()
    if drift:
        return fail("ledger schema", "; ".join(drift[:FIRST_SHOWN]),
                    "the ledger's tables were changed outside nexusmon; restore ledger.db "
                    "from a backup")
    versions = ledger.schema_versions()
    return ok("ledger schema", f"every table and column of schema version {versions[-1]} is there")


def vault_check(ledger: Ledger, root: Path) -> Check:
    vault = Vault(ledger, root)
    rows = ledger.query(
        "SELECT digest, min(path), min(version) FROM artifacts GROUP BY digest "
        "ORDER BY max(created_at) DESC LIMIT ?", (SAMPLE_OBJECTS,),
    )
    bad = [f"{path}@v{version} ({problem})" for digest, path, version in rows
           for problem in [_object_problem(vault.blob_path(digest), digest)] if problem]
    if bad:
        return fail("vault", f"{len(bad)} of {len(rows)} sampled object(s) damaged: {'; '.join(bad[:FIRST_SHOWN])}",
                    "restore vault/objects from a backup; later runs with --no-cache store fresh versions")
    return ok("vault", f"{len(rows)} sampled object(s) match their digest")


def _object_problem(blob: Path, digest: str) -> str | None:
    sha = hashlib.sha256()
    try:
        with blob.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
    except FileNotFoundError:
        return "object missing"
    if f"sha256:{sha.hexdigest()}" != digest:
        return "content does not match its digest"
    return None


def audit_check(ledger: Ledger, root: Path) -> Check:
    problem = ledger.verify_audit()
    if problem is not None:
        return fail("audit", f"audit chain broken: {problem}",
                    "the audit table was changed outside nexusmon; restore ledger.db from a backup")
    count = ledger.query("SELECT count(*) FROM audit")[0][0]
    return ok("audit", f"{count} audit record(s), hash chain intact")


_LEDGER_CHECKS = (
    ("ledger", integrity_check), ("ledger schema", schema_check), ("vault", vault_check),
    ("audit", audit_check),
)


# ------------------------------------------------------------------ environment


def local_key_check(environ: Mapping[str, str]) -> Check:
    path = default_key_path(environ)
    if not path.is_file():
        return info("operator key", f"no local operator key at {path}", "`nexusmon keygen` makes one")
    warning = key_permission_warning(path)
    return info("operator key", warning or f"{path}")


def anthropic_check(environ: Mapping[str, str]) -> Check:
    if environ.get("ANTHROPIC_API_KEY"):
        return info("llm", "ANTHROPIC_API_KEY is set")
    return info("llm", "ANTHROPIC_API_KEY is not set (llm tasks will fail)",
                "export ANTHROPIC_API_KEY to use the llm worker")
