from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nexusmon.errors import StateError, UsageError
from nexusmon.store.ledger import Ledger
from nexusmon.store.vault import (
    ArtifactNotFound,
    ArtifactPathError,
    Vault,
    VaultCorrupted,
    VaultWriteError,
    parse_ref,
)

FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from nexusmon.store.ledger import Ledger
from nexusmon.store.vault import Vault, VaultWriteError
with Ledger(Path(sys.argv[1])) as ledger:
    vault = Vault(ledger, Path(sys.argv[2]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG as an OSError instead of dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        vault.store("big.bin", run_id="r1", task_id="t", lineage={})
    except VaultWriteError as exc:
        print(exc)
"""

BUSY_WRITER = """
import sys
from pathlib import Path
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import TaskRow
from nexusmon.store.vault import Vault
ws = Path(sys.argv[2])
with Ledger(Path(sys.argv[1])) as ledger:
    vault = Vault(ledger, ws)
    for i in range(100000):
        (ws / "out.bin").write_bytes(str(i).encode() * 5000)
        record = vault.store("out.bin", run_id="r1", task_id="t", lineage={})
        ledger.save_tasks([TaskRow("r1", f"t{i}", "succeeded")], [("task.end", "r1", f"t{i}", {})])
        if i == 20:
            print("ready", flush=True)
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def vault(tmp_path: Path, ws: Path):
    with Ledger(tmp_path / "state") as ledger:
        yield Vault(ledger, ws)


def put(vault: Vault, rel: str, content: bytes | str, run_id: str = "r1"):
    path = vault.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return vault.store(rel, run_id=run_id, task_id="make", lineage={"mission": "m", "sources": {}})


def test_same_content_keeps_its_version_new_content_counts_up(vault: Vault) -> None:
    v1 = put(vault, "dist/out.txt", "one")
    assert (v1.path, v1.version, v1.size, v1.run_id) == ("dist/out.txt", 1, 3, "r1")
    assert v1.digest.startswith("sha256:") and len(v1.digest) == 71
    assert put(vault, "dist/out.txt", "one", run_id="r2") == v1
    v2 = put(vault, "dist/out.txt", "two", run_id="r2")
    assert v2.version == 2 and v2.run_id == "r2"
    assert put(vault, "dist/out.txt", "one").version == 3, "only the newest version is compared"
    assert [v.version for v in vault.versions("dist/out.txt")] == [1, 2, 3]
    assert vault.read(vault.get("dist/out.txt", 1)) == b"one"
    assert vault.get("./dist//out.txt") == vault.versions("dist/out.txt")[-1]


def test_blob_is_content_addressed_and_shared(vault: Vault) -> None:
    a = put(vault, "a.txt", "same")
    b = put(vault, "b.txt", "same")
    assert a.digest == b.digest
    blob = vault.objects / a.hexdigest[:2] / a.hexdigest
    assert blob.read_bytes() == b"same"
    assert vault.objects_on_disk() == {a.digest}
    assert list((vault.ledger.state_dir / "vault" / "tmp").iterdir()) == []


def test_storing_appends_an_audit_event(vault: Vault) -> None:
    record = put(vault, "dist/out.txt", "one")
    put(vault, "dist/out.txt", "one")
    events = vault.ledger.events()
    assert [(e.kind, e.run_id, e.task_id) for e in events] == [("artifact.stored", "r1", "make")]
    assert events[0].payload == {"path": "dist/out.txt", "version": 1, "digest": record.digest,
                                 "size": 3}


def test_unknown_path_or_version_names_what_exists(vault: Vault) -> None:
    put(vault, "out.txt", "1")
    put(vault, "out.txt", "2")
    with pytest.raises(ArtifactNotFound) as info:
        vault.get("out.txt", 7)
    assert str(info.value) == "no version v7 of out.txt in the vault (known versions: v1, v2)"
    with pytest.raises(ArtifactNotFound, match="^no artifact missing.txt in the vault$"):
        vault.get("missing.txt")


def test_storing_a_file_that_was_not_produced_fails(vault: Vault) -> None:
    with pytest.raises(ArtifactNotFound, match="artifact dist/none.txt does not exist"):
        vault.store("dist/none.txt", run_id="r", task_id="t", lineage={})


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("/etc/passwd", "artifact path '/etc/passwd' is absolute"),
        ("../outside.txt", "artifact path '../outside.txt' is outside the workspace"),
        ("dist/../../outside.txt", "artifact path 'dist/../../outside.txt' is outside the workspace"),
        ("", "artifact path is empty"),
    ],
)
def test_paths_leaving_the_workspace_are_refused(vault: Vault, rel: str, message: str) -> None:
    with pytest.raises(ArtifactPathError) as info:
        vault.confine(rel)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, UsageError)


def test_symlink_out_of_the_workspace_is_refused(vault: Vault, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (vault.root / "dist").mkdir()
    os.symlink(secret, vault.root / "dist" / "link.txt")
    with pytest.raises(ArtifactPathError, match="artifact path 'dist/link.txt' resolves to .*"
                                                 "outside the workspace"):
        vault.store("dist/link.txt", run_id="r", task_id="t", lineage={})
    assert vault.ls() == []


def test_paths_that_stay_inside_are_accepted(vault: Vault) -> None:
    (vault.root / "real.txt").write_text("x")
    os.symlink("real.txt", vault.root / "alias.txt")
    assert vault.confine("dist/../real.txt") == vault.root / "real.txt"
    assert put(vault, "dist/../real.txt", "x").path == "real.txt"
    assert vault.store("alias.txt", run_id="r", task_id="t", lineage={}).path == "alias.txt"


def test_corrupted_or_missing_blob_is_reported_on_read(vault: Vault) -> None:
    record = put(vault, "out.txt", "precious")
    blob = vault.blob_path(record.digest)
    blob.write_bytes(b"bit rot")
    with pytest.raises(VaultCorrupted, match=r"vault object for out.txt@v1 is corrupted .*expected "
                                              + record.digest):
        vault.read(record)
    blob.unlink()
    with pytest.raises(VaultCorrupted, match="vault object for out.txt@v1 is missing"):
        vault.read(record)


def test_storing_again_repairs_a_corrupted_blob(vault: Vault) -> None:
    record = put(vault, "out.txt", "precious")
    vault.blob_path(record.digest).write_bytes(b"rot")
    put(vault, "copy.txt", "precious")
    assert vault.read(record) == b"precious"


def test_restore_writes_the_version_back(vault: Vault) -> None:
    v1 = put(vault, "dist/out.txt", "first")
    put(vault, "dist/out.txt", "second")
    vault.restore(v1)
    assert (vault.root / "dist" / "out.txt").read_text() == "first"
    (vault.root / "dist" / "out.txt").unlink()
    (vault.root / "dist").rmdir()
    vault.restore(v1)
    assert (vault.root / "dist" / "out.txt").read_text() == "first"
    assert sorted(p.name for p in (vault.root / "dist").iterdir()) == ["out.txt"]


def test_storing_the_same_content_again_repairs_its_missing_blob(vault: Vault) -> None:
    record = put(vault, "out.txt", "precious")
    vault.blob_path(record.digest).unlink()
    assert put(vault, "out.txt", "precious").version == 1
    assert vault.read(record) == b"precious"


def test_restore_keeps_execute_bits_and_an_existing_files_mode(vault: Vault) -> None:
    tool = vault.root / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o750)
    record = vault.store("tool.sh", run_id="r1", task_id="make", lineage={})
    tool.unlink()
    vault.restore(record)
    assert os.access(tool, os.X_OK), oct(tool.stat().st_mode)
    tool.chmod(0o640)
    vault.restore(record)
    assert tool.stat().st_mode & 0o777 == 0o640
    plain = put(vault, "notes.txt", "text")
    (vault.root / "notes.txt").unlink()
    vault.restore(plain)
    assert (vault.root / "notes.txt").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.mark.parametrize("rel", [".git/config", "state/copy.txt", ".nexusmon/ledger.db"])
def test_version_control_and_the_state_directory_are_never_stored(tmp_path: Path, rel: str) -> None:
    root = tmp_path / "ws"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_text("private")
    with Ledger(root / "state") as ledger:
        vault = Vault(ledger, root)
        with pytest.raises(ArtifactPathError, match="inside .git or nexusmon's state directory"):
            vault.store(rel, run_id="r1", task_id="t", lineage={})


def test_restoring_where_a_file_now_stands_for_the_folder_is_a_vault_error(vault: Vault) -> None:
    record = put(vault, "d/o.txt", "x")
    (vault.root / "d" / "o.txt").unlink()
    (vault.root / "d").rmdir()
    (vault.root / "d").write_text("a file now")
    with pytest.raises(VaultWriteError, match=r"^cannot restore d/o.txt@v1 to "):
        vault.restore(record)


def test_review_records_verdict_row_and_audit_event(vault: Vault) -> None:
    record = put(vault, "out.txt", "x")
    vault.review(record, "reject", "typo", "alice")
    vault.review(record, "accept", None, "bob")
    assert vault.get("out.txt").review == "accept"
    assert [(r.verdict, r.note, r.operator) for r in vault.reviews(record)] == [
        ("reject", "typo", "alice"), ("accept", None, "bob")]
    last = vault.ledger.events()[-1]
    assert (last.kind, last.payload["verdict"], last.payload["operator"]) == (
        "artifact.review", "accept", "bob")
    assert vault.ledger.verify_audit() is None
    with pytest.raises(UsageError, match="review verdict must be accept or reject, not 'maybe'"):
        vault.review(record, "maybe", None, "bob")


def test_ls_lists_the_newest_version_of_each_path(vault: Vault) -> None:
    put(vault, "z.txt", "1")
    put(vault, "a.txt", "1")
    put(vault, "z.txt", "2")
    assert [v.ref for v in vault.ls()] == ["a.txt@v1", "z.txt@v2"]


def test_diff_of_text_binary_and_equal_versions(vault: Vault) -> None:
    a = put(vault, "n.txt", "one\ntwo\n")
    b = put(vault, "n.txt", "one\nthree")
    assert vault.diff(a, b) == (
        "--- n.txt@v1\n+++ n.txt@v2\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n"
        "\\ No newline at end of file\n"
    )
    assert vault.diff(a, a) == ""
    c = put(vault, "b.bin", b"\x00\x01")
    d = put(vault, "b.bin", b"\x00\x02")
    assert vault.diff(c, d) == "Binary files b.bin@v1 and b.bin@v2 differ\n"


def test_lineage_and_refs(vault: Vault) -> None:
    record = put(vault, "out.txt", "x")
    lineage = vault.lineage(record)
    assert lineage["artifact"] == "out.txt@v1"
    assert (lineage["run_id"], lineage["task_id"], lineage["mission"]) == ("r1", "make", "m")
    assert parse_ref("dist/out.txt@v3") == ("dist/out.txt", 3)
    assert parse_ref("dist/out.txt") == ("dist/out.txt", None)
    assert Vault.parse_ref("user@host.txt") == ("user@host.txt", None)


def test_gc_helpers_remove_only_unreferenced_blobs(vault: Vault) -> None:
    kept = put(vault, "out.txt", "kept")
    stray = vault.blob_path("sha256:" + "ab" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"orphan")
    assert vault.objects_on_disk() == {kept.digest, "sha256:" + "ab" * 32}
    assert vault.referenced_digests() == {kept.digest}
    with pytest.raises(StateError, match=f"vault object {kept.digest} is still used by out.txt@v1"):
        vault.remove_object(kept.digest)
    assert vault.remove_object("sha256:" + "ab" * 32) is True
    assert vault.remove_object("sha256:" + "ab" * 32) is False
    assert vault.objects_on_disk() == {kept.digest}


def test_full_disk_leaves_no_blob_and_no_row(tmp_path: Path, ws: Path) -> None:
    pytest.importorskip("resource")
    (ws / "big.bin").write_bytes(os.urandom(3 << 20))
    state = tmp_path / "state"
    Ledger(state).close()
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(state), str(ws)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cannot store big.bin in the vault (")
    assert "File too large; nothing was recorded" in proc.stdout
    assert not (state / "vault" / "objects").exists()
    assert list((state / "vault" / "tmp").iterdir()) == []
    con = sqlite3.connect(str(state / "ledger.db"))
    try:
        assert con.execute("SELECT count(*) FROM artifacts").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM audit").fetchone() == (0,)
    finally:
        con.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_writing_leaves_ledger_and_vault_consistent(tmp_path: Path, ws: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", BUSY_WRITER, str(state), str(ws)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    with Ledger(state) as ledger:
        assert ledger.integrity_check() == []
        assert ledger.verify_audit() is None
        vault = Vault(ledger, ws)
        versions = vault.versions("out.bin")
        assert len(versions) > 20
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        for record in versions:
            assert vault.read(record) == str(record.version - 1).encode() * 5000
        assert vault.referenced_digests() <= vault.objects_on_disk()
