"""The vault: versioned, content-addressed copies of workspace files.

A blob lives at ``<state_dir>/vault/objects/<first 2 hex>/<sha256 hex>`` and
is written to ``vault/tmp/`` first, fsynced, then renamed into place inside
the ledger transaction that records it: a row in ``artifacts`` always points
to a complete blob, and a crash leaves at most a stray file in ``vault/tmp/``.
A path's versions count up from 1; storing content equal to the newest
version returns that version.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import posixpath
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath
from typing import Any

from nexusmon.errors import StateError, UsageError
from nexusmon.store.ledger import Ledger
from nexusmon.store.records import ArtifactVersion, ReviewRow
from nexusmon.util.wsglob import WorkspaceFiles

CHUNK = 1 << 20
VERDICTS = ("accept", "reject")
_REF = re.compile(r"^(?P<path>.+)@v?(?P<version>\d+)$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


class ArtifactPathError(UsageError):
    """An artifact path that is absolute or leads outside the workspace."""


class ArtifactNotFound(UsageError):
    """No such file to store, or no such path or version in the vault."""


class VaultCorrupted(StateError):
    """A blob is missing or its content no longer matches its digest."""


class VaultWriteError(StateError):
    """A blob could not be written (disk full, permissions, ...); nothing was recorded."""


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"dist/out.txt@v3"`` -> ``("dist/out.txt", 3)``; no ``@vN`` -> version None."""
    match = _REF.match(ref)
    if match is None:
        return ref, None
    return match["path"], int(match["version"])


def normalize(rel_path: str) -> str:
    """The vault key of a workspace-relative path: POSIX separators, no ``.`` parts."""
    return posixpath.normpath(rel_path.replace("\\", "/"))


def _fsync_dir(path: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a directory; rename is durable enough
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:  # gone already, or its folder is not one (cleanup must not hide the real error)
        pass


def _text_lines(data: bytes) -> list[str] | None:
    """Lines of a UTF-8 text (diff style, final newline marked); None for binary data."""
    if b"\0" in data:
        return None
    try:
        lines = data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


class Vault:
    """Artifact versions of one workspace, stored beside its ledger."""

    def __init__(self, ledger: Ledger, workspace_root: Path) -> None:
        self.ledger = ledger
        self.root = Path(workspace_root)
        self.objects = ledger.state_dir / "vault" / "objects"
        self.tmp = ledger.state_dir / "vault" / "tmp"
        self._private = WorkspaceFiles(self.root, ledger.state_dir)

    parse_ref = staticmethod(parse_ref)

    # ---------------------------------------------------------- paths

    def confine(self, rel_path: str, what: str = "artifact path") -> Path:
        """The workspace file for ``rel_path``; refuses paths that leave the workspace."""
        key = normalize(rel_path)
        if not rel_path.strip():
            raise ArtifactPathError(f"{what} is empty")
        if "\x00" in rel_path:
            raise ArtifactPathError(f"{what} {rel_path!r} contains a NUL byte")
        if os.path.isabs(rel_path) or PureWindowsPath(rel_path).is_absolute():
            raise ArtifactPathError(
                f"{what} '{rel_path}' is absolute; paths are relative to the workspace root"
            )
        if key == ".." or key.startswith("../"):
            raise ArtifactPathError(f"{what} '{rel_path}' is outside the workspace")
        candidate = self.root / key
        root = self.root.resolve()
        resolved = candidate.resolve()
        if resolved != root and root not in resolved.parents:
            raise ArtifactPathError(
                f"{what} '{rel_path}' resolves to {resolved}, outside the workspace "
                "(through a symlink)"
            )
        return candidate

    def confine_artifact(self, rel_path: str) -> Path:
        """:meth:`confine`, also refusing ``.git/`` and the state directory (the vault's own files)."""
        candidate = self.confine(rel_path)
        if self._private.is_hidden(normalize(rel_path)) or self._private.is_private(candidate):
            raise ArtifactPathError(
                f"artifact path '{rel_path}' is inside .git or nexusmon's state directory"
            )
        return candidate

    def blob_path(self, digest: str) -> Path:
        """Where the blob of ``sha256:<hex>`` (or a bare hex digest) lives."""
        hexdigest = digest.split(":", 1)[-1]
        return self.objects / hexdigest[:2] / hexdigest

    # ---------------------------------------------------------- store

    def store(
        self, rel_path: str, *, run_id: str | None, task_id: str | None, lineage: Mapping[str, Any]
    ) -> ArtifactVersion:
        """Version the workspace file ``rel_path``: unchanged content keeps its version."""
        source = self.confine_artifact(rel_path)
        key = normalize(rel_path)
        if not source.is_file():
            raise ArtifactNotFound(f"artifact {key} does not exist in the workspace (or is not a file)")
        tmp, hexdigest, size = self._spool(source, key)
        if os.access(source, os.X_OK):
            lineage = {**lineage, "executable": True}  # restored with its execute bits
        try:
            with self.ledger.transaction():
                newest = self._newest(key)
                self._install(tmp, hexdigest, size, key)  # also mends a missing or truncated blob
                if newest is not None and newest.hexdigest == hexdigest:
                    return newest
                record = ArtifactVersion(
                    key, (newest.version if newest else 0) + 1, f"sha256:{hexdigest}", size,
                    run_id, task_id, time.time(), dict(lineage),
                )
                self._insert(record)
                return record
        finally:
            _unlink_quietly(tmp)

    def _spool(self, source: Path, key: str) -> tuple[Path, str, int]:
        """Copy ``source`` to a fsynced temp file while hashing it."""
        sha, size = hashlib.sha256(), 0
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        except OSError as exc:
            raise VaultWriteError(f"cannot store {key} in the vault: {exc}") from exc
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    sha.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            _unlink_quietly(tmp)
            reason = exc.strerror or str(exc)
            raise VaultWriteError(
                f"cannot store {key} in the vault ({self.objects}): {reason}; nothing was recorded"
            ) from exc
        return tmp, sha.hexdigest(), size

    def _install(self, tmp: Path, hexdigest: str, size: int, key: str) -> None:
        """Move a spooled blob into place unless an intact one is already there."""
        final = self.blob_path(hexdigest)
        if final.is_file() and final.stat().st_size == size:
            return
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise VaultWriteError(f"cannot store {key} in the vault ({final}): {exc}") from exc

    def _insert(self, record: ArtifactVersion) -> None:
        columns = ArtifactVersion.COLUMNS
        self.ledger.execute(
            f"INSERT INTO artifacts ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            record.params(),
        )
        self.ledger.append_event(
            "artifact.stored",
            {"path": record.path, "version": record.version, "digest": record.digest,
             "size": record.size},
            run_id=record.run_id, task_id=record.task_id,
        )

    # ---------------------------------------------------------- lookup

    def _select(self, where: str, params: tuple[Any, ...]) -> list[ArtifactVersion]:
        sql = f"SELECT {', '.join(ArtifactVersion.COLUMNS)} FROM artifacts {where}"
        return [ArtifactVersion.from_row(row) for row in self.ledger.query(sql, params)]

    def _newest(self, key: str) -> ArtifactVersion | None:
        found = self._select("WHERE path = ? ORDER BY version DESC LIMIT 1", (key,))
        return found[0] if found else None

    def versions(self, path: str) -> list[ArtifactVersion]:
        """Every version of a path, oldest first."""
        return self._select("WHERE path = ? ORDER BY version", (normalize(path),))

    def get(self, path: str, version: int | None = None) -> ArtifactVersion:
        """One version of a path (None: the newest); an error lists the known versions."""
        known = self.versions(path)
        if not known:
            raise ArtifactNotFound(f"no artifact {normalize(path)} in the vault")
        if version is None:
            return known[-1]
        for record in known:
            if record.version == version:
                return record
        listed = ", ".join(f"v{r.version}" for r in known)
        raise ArtifactNotFound(
            f"no version v{version} of {normalize(path)} in the vault (known versions: {listed})"
        )

    def ls(self) -> list[ArtifactVersion]:
        """The newest version of every path, sorted by path."""
        return self._select(
            "WHERE (path, version) IN (SELECT path, max(version) FROM artifacts GROUP BY path) "
            "ORDER BY path",
            (),
        )

    # ---------------------------------------------------------- content

    def read(self, record: ArtifactVersion) -> bytes:
        """A version's content, checked against its digest."""
        blob = self.blob_path(record.digest)
        try:
            data = blob.read_bytes()
        except FileNotFoundError as exc:
            raise VaultCorrupted(f"vault object for {record.ref} is missing ({blob})") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != record.hexdigest:
            raise VaultCorrupted(
                f"vault object for {record.ref} is corrupted ({blob}): expected "
                f"{record.digest}, found sha256:{actual}"
            )
        return data

    def restore(self, record: ArtifactVersion) -> None:
        """Write a version back to its workspace path, atomically (cache replay).

        An existing file keeps its mode; a new one gets the umask's, with execute bits
        when the stored file was executable.
        """
        target = self.confine_artifact(record.path)
        data = self.read(record)
        temp = target.parent / f".{target.name}.{secrets.token_hex(6)}.restore"
        mode = 0o777 if record.lineage.get("executable") else 0o666
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # umask applies
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if target.is_file():
                os.chmod(temp, stat.S_IMODE(target.stat().st_mode))
            os.replace(temp, target)
        except OSError as exc:
            _unlink_quietly(temp)
            raise VaultWriteError(f"cannot restore {record.ref} to {target}: {exc}") from exc

    def diff(self, a: ArtifactVersion, b: ArtifactVersion) -> str:
        """A unified diff from ``a`` to ``b``; empty when equal; a one-line note for binary."""
        old, new = self.read(a), self.read(b)
        old_lines, new_lines = _text_lines(old), _text_lines(new)
        if old_lines is None or new_lines is None:
            verb = "are identical" if old == new else "differ"
            return f"Binary files {a.ref} and {b.ref} {verb}\n"
        return "".join(difflib.unified_diff(old_lines, new_lines, fromfile=a.ref, tofile=b.ref))

    def lineage(self, record: ArtifactVersion) -> dict[str, Any]:
        """Where a version came from: its identity plus the lineage recorded with it."""
        return {
            "artifact": record.ref, "digest": record.digest, "size": record.size,
            "run_id": record.run_id, "task_id": record.task_id, "created_at": record.created_at,
            "review": record.review, **record.lineage,
        }

    # ---------------------------------------------------------- reviews

    def review(
        self, record: ArtifactVersion, verdict: str, note: str | None, operator: str | None
    ) -> None:
        """Record an operator's ``accept``/``reject`` of a version (row, column, audit event)."""
        if verdict not in VERDICTS:
            raise UsageError(f"review verdict must be accept or reject, not '{verdict}'")
        with self.ledger.transaction():
            changed = self.ledger.execute(
                "UPDATE artifacts SET review = ? WHERE path = ? AND version = ?",
                (verdict, record.path, record.version),
            )
            if not changed:
                raise ArtifactNotFound(f"no artifact {record.ref} in the vault")
            self.ledger.execute(
                "INSERT INTO reviews (path, version, verdict, note, operator, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (record.path, record.version, verdict, note, operator, time.time()),
            )
            self.ledger.append_event(
                "artifact.review",
                {"path": record.path, "version": record.version, "digest": record.digest,
                 "verdict": verdict, "note": note, "operator": operator},
                run_id=record.run_id, task_id=record.task_id,
            )

    def reviews(self, record: ArtifactVersion) -> list[ReviewRow]:
        """Every review of a version, oldest first."""
        rows = self.ledger.query(
            f"SELECT {', '.join(ReviewRow.COLUMNS)} FROM reviews WHERE path = ? AND version = ? "
            "ORDER BY rowid",
            (record.path, record.version),
        )
        return [ReviewRow(*row) for row in rows]

    # ---------------------------------------------------------- garbage collection

    def objects_on_disk(self) -> set[str]:
        """Digests (``sha256:<hex>``) of every blob in the vault directory."""
        if not self.objects.is_dir():
            return set()
        return {
            f"sha256:{blob.name}"
            for blob in self.objects.glob("??/*")
            if _HEX.match(blob.name) and blob.parent.name == blob.name[:2]
        }

    def referenced_digests(self) -> set[str]:
        """Digests some artifact version points to."""
        return {row[0] for row in self.ledger.query("SELECT DISTINCT digest FROM artifacts")}

    def remove_object(self, digest: str) -> bool:
        """Delete an unreferenced blob; True when a file was removed."""
        key = f"sha256:{digest.split(':', 1)[-1]}"
        with self.ledger.transaction():  # no version can start pointing at it meanwhile
            users = self.ledger.query(
                "SELECT path, version FROM artifacts WHERE digest = ? LIMIT 1", (key,)
            )
            if users:
                path, version = users[0]
                raise StateError(f"vault object {key} is still used by {path}@v{version}")
            blob = self.blob_path(key)
            existed = blob.exists()
            _unlink_quietly(blob)
        return existed
