"""`gc`: free what no record needs: orphan vault objects, stale temp files, old runs.

Artifact versions are the vault's history and are never removed, so every
blob they point to stays.  Audit records are never removed either; a
``gc.completed`` event records what was freed, so the chain still verifies.

Old runs go only when they are finished.  An unfinished run (``running``,
``interrupted``, ``awaiting_approval``) is work `resume` can still complete;
it goes only when asked (``unfinished=True``), and a run that a live process
drives never goes: each run is deleted under its run lock
(:mod:`nexusmon.store.runlock`), which a live runner holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from msgspec import Struct

from nexusmon.errors import StateError
from nexusmon.spec.model import RunStatus
from nexusmon.store import runlock
from nexusmon.store.ledger import Ledger
from nexusmon.store.vault import Vault

#: Temp files younger than this may belong to a run in progress.
STALE_AFTER_S = 3600.0
RUN_TABLES = ("logs", "tasks", "runs")  # children first
#: Runs `resume` can still take to an end.
UNFINISHED = frozenset({RunStatus.RUNNING.value, RunStatus.INTERRUPTED.value,
                        RunStatus.AWAITING_APPROVAL.value})
_LOCK_BATCH = 100  # runs deleted per transaction (each holds its lock meanwhile)


class Freed(Struct, frozen=True):
    """What a collection removed (or, in a dry run, would remove)."""

    objects: tuple[str, ...] = ()
    object_bytes: int = 0
    temp_files: tuple[str, ...] = ()
    temp_bytes: int = 0
    runs: tuple[str, ...] = ()
    dry_run: bool = False
    kept_unfinished: tuple[str, ...] = ()  # old runs kept because `resume` can still finish them
    kept_live: tuple[str, ...] = ()  # old runs kept because a live process drives them

    def as_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "objects": {"count": len(self.objects), "bytes": self.object_bytes, "digests": list(self.objects)},
            "temp_files": {"count": len(self.temp_files), "bytes": self.temp_bytes, "paths": list(self.temp_files)},
            "runs": {"count": len(self.runs), "run_ids": list(self.runs),
                     "kept_unfinished": list(self.kept_unfinished), "kept_live": list(self.kept_live)},
        }


def collect(
    ledger: Ledger, root: Path, keep_runs: int | None = None, dry_run: bool = False,
    now: float | None = None, unfinished: bool = False,
) -> Freed:
    """Remove orphan objects, stale temp files and (with ``keep_runs``) older finished runs;
    with ``unfinished``, older unfinished runs too, unless a live process drives them."""
    old = old_runs(ledger, keep_runs) if keep_runs is not None else {}
    wanted = [run_id for run_id, status in old.items() if unfinished or status not in UNFINISHED]
    kept_unfinished = tuple(run_id for run_id, status in old.items()
                            if status in UNFINISHED and not unfinished)
    objects = orphan_objects(Vault(ledger, root))
    temps = stale_temp_files(ledger.state_dir, time.time() if now is None else now)
    if dry_run:
        runs = [r for r in wanted if not runlock.is_driven(ledger.state_dir, r)]
        return Freed(tuple(objects), sum(objects.values()), _shown(ledger, temps), _size(temps),
                     tuple(runs), True, kept_unfinished, _left(wanted, runs))
    runs = delete_runs(ledger, wanted, unfinished)
    removed = remove_objects(Vault(ledger, root), list(objects))
    sizes = {p: _file_size(p) for p in temps}
    gone = remove_files(temps)
    freed = Freed(tuple(removed), sum(objects[d] for d in removed), _shown(ledger, gone),
                  sum(sizes[p] for p in gone), tuple(runs), False, kept_unfinished, _left(wanted, runs))
    ledger.append_event("gc.completed", {
        "objects": len(freed.objects), "object_bytes": freed.object_bytes,
        "temp_files": len(freed.temp_files), "runs": list(freed.runs),
    })
    return freed


def old_runs(ledger: Ledger, keep: int) -> dict[str, str]:
    """Run id -> status of the runs beyond the ``keep`` newest."""
    rows = ledger.query(
        "SELECT run_id, status FROM runs ORDER BY started_at DESC, run_id DESC LIMIT -1 OFFSET ?",
        (max(keep, 0),))
    return {row[0]: row[1] for row in rows}


def delete_runs(ledger: Ledger, run_ids: Sequence[str], unfinished: bool = False) -> list[str]:
    """Delete runs with their task and log rows, each under its run lock; an unfinished run
    only when ``unfinished``.  The runs deleted (a live runner's never are)."""
    deleted: list[str] = []
    for start in range(0, len(run_ids), _LOCK_BATCH):
        locks = [lock for lock in (runlock.try_acquire(ledger.state_dir, run_id)
                                   for run_id in run_ids[start:start + _LOCK_BATCH]) if lock]
        try:
            with ledger.transaction():
                deleted += [lock.run_id for lock in locks if _delete_run(ledger, lock.run_id, unfinished)]
        finally:
            for lock in locks:
                lock.release()
    return deleted


def _delete_run(ledger: Ledger, run_id: str, unfinished: bool) -> bool:
    # Read again under the lock: a run resumed and interrupted since is unfinished now.
    rows = ledger.query("SELECT status FROM runs WHERE run_id = ?", (run_id,))
    if not rows or (rows[0][0] in UNFINISHED and not unfinished):
        return False
    for table in RUN_TABLES:
        ledger.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    return True


def _left(wanted: Sequence[str], deleted: Sequence[str]) -> tuple[str, ...]:
    gone = set(deleted)
    return tuple(run_id for run_id in wanted if run_id not in gone)


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
    """Files under ``vault/tmp/`` and ``tmp/`` untouched for ``STALE_AFTER_S``, except the
    output files (``tmp/<run id>-<n>.out``) of runs a live process drives."""
    stale = [p for p in _temp_files(state_dir) if _mtime(p) < now - STALE_AFTER_S]
    owners = {p: _output_owner(state_dir, p) for p in stale}
    live = {run_id: runlock.is_driven(state_dir, run_id) for run_id in set(owners.values()) if run_id}
    return sorted(p for p in stale if not live.get(owners[p] or "", False))


def _output_owner(state_dir: Path, path: Path) -> str | None:
    """The run a task output file belongs to (see ``Executor._output_file``)."""
    if path.parent != state_dir / "tmp" or path.suffix != ".out":
        return None
    return path.name.rpartition("-")[0] or None


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
