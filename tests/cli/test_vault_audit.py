"""`nexusmon vault` (ls, show, cat, diff, lineage, review) and `nexusmon audit` (list, verify)."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_runner import run_cli_raw

from .test_keygen_approve import audit_events, nx, nx_json, write

ART = """
mission: art
objective: produce a versioned artifact
inputs:
  content: {type: string, default: one}
tasks:
  produce:
    run: |
      mkdir -p dist
      printf '%s' {{ inputs.content }} > dist/out.txt
    artifacts: [dist/out.txt]
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "missions/art.yaml", ART)
    return root


@pytest.fixture
def two_versions(ws: Path) -> tuple[Path, str, str]:
    """dist/out.txt@v1 holds `one`, @v2 holds `two`; returns the two run ids."""
    first = nx_json(ws, "run", "art")[1]["run_id"]
    second = nx_json(ws, "run", "art", "-i", "content=two")[1]["run_id"]
    return ws, first, second


def cat_bytes(root: Path, ref: str) -> tuple[int, bytes]:
    code, out, _ = run_cli_raw(["-C", str(root), "vault", "cat", ref])
    return code, out


# ---------------------------------------------------------------- vault


def test_ls_lists_the_newest_version_of_each_path(two_versions: tuple[Path, str, str]) -> None:
    ws, _, second = two_versions
    outcome = nx(ws, "vault", "ls")
    assert outcome.code == 0
    assert outcome.out == f"dist/out.txt@v2  3 B  produce  {second}\n"
    doc = nx_json(ws, "vault", "ls")[1]
    assert [(a["path"], a["version"], a["run_id"]) for a in doc["artifacts"]] == [("dist/out.txt", 2, second)]


def test_an_empty_vault_is_listed_without_creating_state(ws: Path) -> None:
    assert nx(ws, "vault", "ls").out == "the vault is empty: no task has stored an artifact yet\n"
    outcome = nx(ws, "vault", "cat", "dist/out.txt")
    assert outcome.code == 2
    assert outcome.err == "error: no artifact dist/out.txt in the vault (nothing has run yet)\n"
    assert not (ws / ".nexusmon").exists()


def test_cat_writes_exact_bytes(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    assert cat_bytes(ws, "dist/out.txt@v1") == (0, b"one")
    assert cat_bytes(ws, "dist/out.txt") == (0, b"two")


def test_unknown_versions_list_the_known_ones(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    outcome = nx(ws, "vault", "cat", "dist/out.txt@v9")
    assert outcome.code == 2
    assert outcome.err == "error: no version v9 of dist/out.txt in the vault (known versions: v1, v2)\n"
    assert nx(ws, "vault", "show", "dist/nope.txt").err == "error: no artifact dist/nope.txt in the vault\n"


def test_diff_between_versions(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    outcome = nx(ws, "vault", "diff", "dist/out.txt@v1", "dist/out.txt@v2")
    assert outcome.code == 0
    assert outcome.out == (
        "--- dist/out.txt@v1\n+++ dist/out.txt@v2\n@@ -1 +1 @@\n"
        "-one\n\\ No newline at end of file\n+two\n\\ No newline at end of file\n"
    )
    same = nx(ws, "vault", "diff", "dist/out.txt@v2", "dist/out.txt")
    assert same.out == "dist/out.txt@v2 and dist/out.txt@v2 are identical\n"


def test_lineage_names_run_task_and_mission(two_versions: tuple[Path, str, str]) -> None:
    ws, first, _ = two_versions
    code, doc = nx_json(ws, "vault", "lineage", "dist/out.txt@v1")
    assert code == 0
    assert (doc["artifact"], doc["run_id"], doc["task_id"]) == ("dist/out.txt@v1", first, "produce")
    assert doc["mission"] == "art" and doc["mission_file"] == "missions/art.yaml"
    assert doc["mission_digest"].startswith("sha256:")
    text = nx(ws, "vault", "lineage", "dist/out.txt@v1").out.splitlines()
    assert f"run      {first}" in text
    assert "task     produce" in text
    assert f"mission  art (missions/art.yaml, {doc['mission_digest']})" in text


def test_review_is_recorded_shown_and_audited(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    outcome = nx(ws, "vault", "review", "dist/out.txt@v1", "--accept", "--note", "fine", "--operator", "carol")
    assert (outcome.code, outcome.out) == (0, "accepted dist/out.txt@v1 as carol\n")
    doc = nx_json(ws, "vault", "show", "dist/out.txt@v1")[1]
    assert doc["review"] == "accept"
    assert [(r["verdict"], r["note"], r["operator"]) for r in doc["reviews"]] == [("accept", "fine", "carol")]
    assert doc["versions"] == [1, 2]
    assert "[accept]" not in nx(ws, "vault", "ls").out, "ls shows the newest version, not v1"
    payload = audit_events(ws, "artifact.review")[-1]["payload"]
    assert (payload["verdict"], payload["operator"], payload["version"]) == ("accept", "carol", 1)


def test_review_without_user_variables_names_the_account(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    unset = {name: None for name in ("LOGNAME", "USER", "LNAME", "USERNAME")}
    code, out, _ = run_cli_raw(["-C", ws, "vault", "review", "dist/out.txt@v1", "--reject"], env=unset)
    assert (code, out.decode()) == (0, f"rejected dist/out.txt@v1 as {pwd.getpwuid(os.getuid()).pw_name}\n")


def test_review_needs_a_verdict_and_a_version(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    assert nx(ws, "vault", "review", "dist/out.txt@v2").err == "error: pass --accept or --reject\n"
    both = nx(ws, "vault", "review", "dist/out.txt@v2", "--accept", "--reject")
    assert (both.code, both.err) == (2, "error: pass either --accept or --reject\n")
    outcome = nx(ws, "vault", "review", "dist/out.txt", "--reject")
    assert outcome.code == 2
    assert outcome.err == "error: name the version to review: dist/out.txt@v2 is the newest\n"


# ---------------------------------------------------------------- audit


def test_audit_lists_events_of_one_run(two_versions: tuple[Path, str, str]) -> None:
    ws, first, second = two_versions
    code, doc = nx_json(ws, "audit", "--run", "last")
    assert code == 0
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert {e["run_id"] for e in doc["events"]} == {second}
    assert len(nx_json(ws, "audit", "--limit", "2")[1]["events"]) == 2
    text = nx(ws, "audit", "--run", first).out.splitlines()
    assert all(first in line for line in text)
    assert any("artifact.stored" in line and "path=dist/out.txt version=1" in line for line in text)


def test_verify_passes_then_finds_an_edited_record(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    count = len(nx_json(ws, "audit")[1]["events"])
    assert nx(ws, "audit", "verify") == (0, f"audit chain intact: {count} records\n", "")
    con = sqlite3.connect(ws / ".nexusmon" / "ledger.db")
    with con:
        con.execute("UPDATE audit SET payload = ? WHERE seq = 2", (json.dumps({"tampered": True}),))
    con.close()
    outcome = nx(ws, "audit", "verify")
    assert outcome.code == 1
    assert outcome.out == "audit chain broken: audit record 2: contents do not match the record's hash (edited)\n"
    doc = json.loads(nx(ws, "audit", "verify", "--format", "json").out)
    assert doc["intact"] is False and doc["records"] == count


def test_verify_finds_a_removed_record(two_versions: tuple[Path, str, str]) -> None:
    ws, _, _ = two_versions
    con = sqlite3.connect(ws / ".nexusmon" / "ledger.db")
    with con:
        con.execute("DELETE FROM audit WHERE seq = 3")
    con.close()
    outcome = nx(ws, "audit", "verify")
    assert (outcome.code, outcome.out) == (1, "audit chain broken: audit record 3: record 3 is missing (removed)\n")


def test_audit_without_a_ledger(ws: Path) -> None:
    assert nx(ws, "audit").out == "no audit records yet\n"
    assert nx(ws, "audit", "verify") == (0, "audit chain intact: 0 records\n", "")
    assert not (ws / ".nexusmon").exists()


def test_lineage_names_the_commit_of_a_repository_holding_the_workspace(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ws = repo / "ops"
    write(ws, "missions/art.yaml", ART)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-q", "-m", "missions"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert nx_json(ws, "run", "art")[0] == 0
    assert nx_json(ws, "vault", "lineage", "dist/out.txt@v1")[1]["git_commit"] == head
