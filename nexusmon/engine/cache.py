"""Task fingerprints: what must be unchanged for a cached result to stand in for a run.

A fingerprint hashes the worker, the rendered parameters and environment (display
form: secrets by name), the content of every file the task's ``sources`` globs
match, its ``artifacts`` patterns, and the outputs and artifact digests of the
tasks it needs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct

from nexusmon.compile.digest import canonical_json
from nexusmon.compile.plan import PlannedTask
from nexusmon.engine.digestmemo import DigestMemo
from nexusmon.util.wsglob import WorkspaceFiles


class Fingerprint(Struct, frozen=True):
    """A task's cache key and the parts it was hashed from."""

    digest: str
    parts: Mapping[str, Any]  # what went in, to explain a miss


class SourceHasher:
    """Hashes workspace files once per run, however many tasks name them."""

    def __init__(self, root: Path, state_dir: Path | None = None, memo: DigestMemo | None = None) -> None:
        self.root = root
        self._root = str(root)
        self._state_dir = state_dir
        self._workspace = WorkspaceFiles(root, state_dir)
        self._memo = memo or DigestMemo(state_dir)
        self._files: dict[str, str] = {}
        self._globs: dict[str, tuple[str, ...]] = {}

    def matches(self, pattern: str) -> tuple[str, ...]:
        found = self._globs.get(pattern)
        if found is None:
            found = self._globs[pattern] = self._workspace.expand(pattern)
        return found

    def digest(self, rel: str) -> str:
        if rel not in self._files:
            self._files[rel] = self._memo.digest(os.path.join(self._root, rel), rel)
        return self._files[rel]

    def sources(self, patterns: Iterable[str]) -> dict[str, str]:
        files: dict[str, str] = {}
        for pattern in patterns:
            for rel in self.matches(pattern):
                files[rel] = self.digest(rel)
        return files

    def forget(self) -> None:
        """Drop what was hashed (a task may have rewritten files)."""
        self._files.clear()
        self._globs.clear()

    def fresh(self) -> SourceHasher:
        """A hasher that knows no file yet, sharing this one's digest memo."""
        return SourceHasher(self.root, self._state_dir, self._memo)

    def save(self) -> None:
        """Remember the digests learned for the next run (see engine.digestmemo)."""
        self._memo.save()


def result_digest(outputs: Mapping[str, Any], artifacts: Iterable[Mapping[str, Any]]) -> str:
    body = {"outputs": dict(outputs), "artifacts": [a.get("digest") for a in artifacts]}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def fingerprint(
    task: PlannedTask, mission_env: Mapping[str, str], hasher: SourceHasher,
    upstream: Mapping[str, str], mission: str,
) -> Fingerprint:
    """The cache key of ``task``; ``upstream`` maps each needed task id to its result digest."""
    parts = {
        "mission": mission,
        "task": task.id,
        "worker": task.worker,
        "params": task.params,
        "env": {**mission_env, **task.env},
        "sources": hasher.sources(task.spec.sources),
        "artifacts": list(task.spec.artifacts),
        "upstream": {n: upstream.get(n, "") for n in task.needs},
    }
    digest = "sha256:" + hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()
    return Fingerprint(digest, parts)


def explain_miss(now: Mapping[str, Any], before: Mapping[str, Any] | None) -> str:
    """Why a task's cache entry does not apply any more, in one line."""
    if before is None:
        return "never ran with these inputs"
    changed: list[str] = []
    if now.get("worker") != before.get("worker"):
        changed.append("worker")
    changed += _changed_keys("parameter", now.get("params"), before.get("params"))
    changed += _changed_keys("env", now.get("env"), before.get("env"))
    if now.get("artifacts") != before.get("artifacts"):
        changed.append("artifacts")
    changed += _changed_keys("source", now.get("sources", {}), before.get("sources", {}))
    up_now, up_before = now.get("upstream", {}), before.get("upstream", {})
    changed += [f"upstream {n} changed" for n in sorted(up_now) if up_now[n] != up_before.get(n)]
    return ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "") if changed else "inputs changed"


def _changed_keys(what: str, now: Any, before: Any) -> list[str]:
    """``["parameter url changed", "env TOKEN new"]``: which keys of a mapping differ."""
    if now == before:
        return []
    if not isinstance(now, Mapping) or not isinstance(before, Mapping):
        return [f"{what}s changed"]
    return [
        f"{what} {key} " + ("new" if key not in before else "removed" if key not in now else "changed")
        for key in sorted(set(now) | set(before), key=str)
        if now.get(key) != before.get(key)
    ]
