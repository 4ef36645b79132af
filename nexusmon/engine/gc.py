"""`gc`: free what no record needs: orphan vault objects, stale temp files, old runs.

Artifact versions are the vault's history and are never removed, so every
blob they point to stays.  Audit records are never removed either; a
``gc.completed`` event records what was freed, so the chain still verifies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from msgspec import Struct

from nexusmon.errors import StateError
from nexusmon.store.ledger import Ledger
from nexusmon.store.vault import Vault

#: Temp files younger than this may belong to a run in progress.
STALE_AFTER_S = 3600.0
RUN_TABLES = ("logs", "tasks", "runs")  # children first


class Freed(Struct, frozen=True):
    """What a collection removed (or, in a dry run, would remove)."""

    objects: tuple[str, ...] = ()
    object_bytes: int = 0
    temp_files: tuple[str, ...] = ()
    temp_bytes: int = 0
    runs: tuple[str, ...] = ()
    dry_run: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "objects": {"count": len(self.objects), "bytes": self.object_bytes, "digests": list(self.objects)},
            "temp_files": {"count": len(self.temp_files), "bytes": self.temp_bytes, "paths": list(self.temp_files)},
            "runs": {"count": len(self.runs), "run_ids": list(self.runs)},
        }


def collect(
    ledger: Ledger, root: Path, keep_runs: int | None = None, dry_run: bool = False,
    now: float | None = None,
) -> Freed:
    """Remove orphan objects, stale temp files and (with ``keep_runs``) older runs."""
    runs = old_runs(ledger, keep_runs) if keep_runs is not None else []
    objects = orphan_objects(Vault(ledger, root))
    temps = stale_temp_files(ledger.state_dir, time.time() if now is None else now)
    if dry_run:
        return Freed(tuple(objects), sum(objects.values()), _shown(ledger, temps), _size(temps),
                     tuple(runs), dry_run=True)
    with ledger.transaction():
        delete_runs(ledger, runs)
    removed = remove_objects(Vault(ledger, root), list(objects))
    sizes = {p: _file_size(p) for p in temps}
    gone = remove_files(temps)
    freed = Freed(tuple(removed), sum(objects[d] for d in removed), _shown(ledger, gone),
                  sum(sizes[p] for p in gone), tuple(runs))
    ledger.append_event("gc.completed", {
        "objects": len(freed.objects), "object_bytes": freed.object_bytes,
        "temp_files": len(freed.temp_files), "runs": list(freed.runs),
    })
    return freed


def old_runs(ledger: Ledger, keep: int) -> list[str]:
    """Run ids beyond the ``keep`` newest."""
    rows = ledger.query("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT -1 OFFSET ?",
                        (max(keep, 0),))
    return [row[0] for row in rows]


def delete_runs(ledger: Ledger, run_ids: Sequence[str]) -> None:
    """Delete runs with their task and log rows (call inside a ledger transaction)."""
    for run_id in run_ids:
        for table in RUN_TABLES:
            ledger.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))


def orphan_objects(vault: Vault) -> dict[str, int]:
    """Digest -> size of every blob no artifact version points to."""
    orphans = sorted(vault.objects_on_disk() - vault.referenced_digests())
    return {digest: _file_size(vault.blob_path(digest)) for digest in orphans}


def remove_objects(vault: Vault, digests: Sequence[str]) -> list[str]:
    """Remove blobs; one that became referenced meanwhile is kept."""
    removed = []
    for digest in digests:
        try:
            if vault.remove_object(digest):
                removed.append(digest)
        except StateError:
            continue
    return removed


def stale_temp_files(state_dir: Path, now: float) -> list[Path]:
    """Files under ``vault/tmp/`` and ``tmp/`` untouched for ``STALE_AFTER_S``."""
    return sorted(p for p in _temp_files(state_dir) if _mtime(p) < now - STALE_AFTER_S)


def _temp_files(state_dir: Path) -> Iterator[Path]:
    for folder in (state_dir / "vault" / "tmp", state_dir / "tmp"):
        if folder.is_dir():
            yield from (p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def remove_files(paths: Sequence[Path]) -> list[Path]:
    gone = []
    for path in paths:
        try:
            path.unlink()
        except OSError:  # gone already, or not ours to remove
            continue
        gone.append(path)
    return gone


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return float("inf")


def _file_size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _size(paths: Sequence[Path]) -> int:
    return sum(_file_size(p) for p in paths)


def _shown(ledger: Ledger, paths: Sequence[Path]) -> tuple[str, ...]:
    return tuple(p.relative_to(ledger.state_dir).as_posix() for p in paths)
