"""`nexusmon doctor`: a healthy workspace passes; each kind of damage fails its own check."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest

from nexusmon.schemas import schema_text

MISSION = """
mission: art
objective: store an artifact
tasks:
  make:
    run: mkdir -p dist && echo hello > dist/x.txt
    artifacts: [dist/x.txt]
"""


@pytest.fixture
def root(tmp_path: Path, make_workspace: Callable[..., Path]) -> Path:
    return make_workspace(tmp_path, {"missions/art.yaml": MISSION})


def doctor(cli: Callable[..., Any], root: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = cli(["doctor", "--format", "json"], root, env)
    return result.exit_code, json.loads(result.stdout)


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"]}


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["checks"] if c["name"] == name)
    return found


def test_a_healthy_workspace_passes(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    rc, doc = doctor(cli, root)
    assert rc == 0 and doc["ok"] is True
    assert statuses(doc) == {
        "nexusmon": "info", "workspace": "ok", "files": "ok", "schemas": "info", "plugins": "ok",
        "operators": "info", "state dir": "ok", "ledger": "ok", "ledger schema": "ok", "vault": "ok",
        "audit": "ok",
        "operator key": "info", "llm": "info",
    }
    assert check(doc, "vault")["detail"] == "1 sampled object(s) match their digest"
    assert set(doc["checks"][0]) == {"name", "status", "detail", "hint"}


def test_doctor_creates_no_state(root: Path, cli: Callable[..., Any]) -> None:
    rc, doc = doctor(cli, root)
    assert rc == 0
    assert check(doc, "ledger") == {
        "name": "ledger", "status": "info", "hint": "",
        "detail": f"no ledger.db in {root.resolve() / '.nexusmon'} yet (no run recorded)",
    }
    assert check(doc, "state dir")["detail"] == f"{root.resolve() / '.nexusmon'} will be created by the first run"
    assert not (root / ".nexusmon").exists()


def test_a_corrupted_vault_object_fails_the_vault_check(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    [blob] = [p for p in (root / ".nexusmon/vault/objects").rglob("*") if p.is_file()]
    blob.write_text("tampered\n")

    result = cli(["doctor"], root)
    assert result.exit_code == 1
    assert "FAIL  vault          1 of 1 sampled object(s) damaged: dist/x.txt@v1 (content does not match its digest)" \
        in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == "1 check(s) failed"


def test_a_missing_vault_object_fails_the_vault_check(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    for blob in (root / ".nexusmon/vault/objects").rglob("*"):
        if blob.is_file():
            blob.unlink()
    rc, doc = doctor(cli, root)
    assert rc == 1 and check(doc, "vault")["detail"].endswith("dist/x.txt@v1 (object missing)")


def test_an_edited_audit_record_fails_the_audit_check(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    with sqlite3.connect(root / ".nexusmon/ledger.db") as db:
        db.execute("UPDATE audit SET payload = '{\"forged\": true}' WHERE seq = 2")
    db.close()

    rc, doc = doctor(cli, root)
    assert rc == 1 and doc["ok"] is False
    assert [c["name"] for c in doc["checks"] if c["status"] == "fail"] == ["audit"]
    assert check(doc, "audit")["detail"].startswith("audit chain broken: ")
    assert "restore ledger.db from a backup" in check(doc, "audit")["hint"]


def test_a_table_changed_outside_nexusmon_fails_the_schema_check(
    root: Path, cli: Callable[..., Any],
) -> None:
    assert cli(["run", "art"], root).exit_code == 0
    with sqlite3.connect(root / ".nexusmon/ledger.db") as db:
        db.execute("ALTER TABLE logs DROP COLUMN attempt")
        db.execute("DROP TABLE reviews")
    db.close()

    rc, doc = doctor(cli, root)
    assert rc == 1
    assert [c["name"] for c in doc["checks"] if c["status"] == "fail"] == ["ledger schema"]
    assert check(doc, "ledger schema")["detail"] == (
        "column logs.attempt is missing; table reviews is missing"
    )


def test_invalid_files_fail_the_files_check_with_their_location(
    root: Path, cli: Callable[..., Any], make_workspace: Callable[..., Path], tmp_path: Path,
) -> None:
    make_workspace(tmp_path, {"missions/bad.yaml": "mission: bad\nobjective: x\ntasks:\n  a: {run: x, needs: [zz]}\n"})
    rc, doc = doctor(cli, root)
    assert rc == 1
    assert check(doc, "files") == {
        "name": "files", "status": "fail",
        "detail": "1 problem(s): missions/bad.yaml:4:23: error: task 'a' needs unknown task 'zz'",
        "hint": "run `nexusmon validate` for every located error",
    }


def test_an_unparseable_operator_key_fails_the_operators_check(
    root: Path, cli: Callable[..., Any], make_workspace: Callable[..., Path], tmp_path: Path,
) -> None:
    make_workspace(tmp_path, {"policies/ops.yaml": """
        policy: ops
        operators:
          - {name: alice, public_key: "ed25519:AAAA", may_approve: [A]}
    """})
    rc, doc = doctor(cli, root)
    assert rc == 1
    assert check(doc, "operators")["detail"] == (
        "policies/ops.yaml:3:31: operator 'alice': public key 'ed25519:AAAA' holds 3 bytes; "
        "an Ed25519 key has 32"
    )


def test_schemas_must_match_the_shipped_ones(root: Path, cli: Callable[..., Any]) -> None:
    (root / "schemas").mkdir()
    for kind in ("mission", "rune", "policy", "settings"):
        (root / "schemas" / f"{kind}.schema.json").write_text(schema_text(kind), encoding="utf-8")
    rc, doc = doctor(cli, root)
    assert rc == 0 and check(doc, "schemas")["status"] == "ok"

    (root / "schemas/rune.schema.json").write_text("{}", encoding="utf-8")
    (root / "schemas/policy.schema.json").unlink()
    rc, doc = doctor(cli, root)
    assert rc == 1
    assert check(doc, "schemas")["detail"] == "differ from this nexusmon's or are missing: rune.schema.json, policy.schema.json"


def test_outside_a_workspace_only_the_workspace_check_fails(tmp_path: Path, cli: Callable[..., Any]) -> None:
    rc, doc = doctor(cli, tmp_path)
    assert rc == 1
    assert statuses(doc) == {"nexusmon": "info", "workspace": "fail", "operator key": "info", "llm": "info"}


def test_the_llm_key_is_reported_but_never_printed(root: Path, cli: Callable[..., Any]) -> None:
    result = cli(["doctor"], root, {"ANTHROPIC_API_KEY": "sk-secret-value"})
    assert result.exit_code == 0
    assert "info  llm           ANTHROPIC_API_KEY is set" in result.stdout.splitlines()
    assert "sk-secret-value" not in result.stdout + result.stderr


def test_a_local_operator_key_is_reported(root: Path, cli: Callable[..., Any]) -> None:
    assert cli(["keygen"], root).exit_code == 0
    rc, doc = doctor(cli, root)
    assert rc == 0 and check(doc, "operator key")["detail"].endswith("nexusmon/operator.key")
