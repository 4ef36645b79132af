"""Task fingerprints: what must be unchanged for a cached result to stand in for a run.

A fingerprint hashes the worker, the rendered parameters and environment (display
form: secrets by name), the content of every file the task's ``sources`` globs
match, and the outputs and artifact digests of the tasks it needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from msgspec import Struct

from nexusmon.compile.digest import canonical_json
from nexusmon.compile.plan import PlannedTask

EXCLUDED_DIRS = {".git", ".nexusmon"}
_GLOB_CHARS = frozenset("*?[")


class Fingerprint(Struct, frozen=True):
    """A task's cache key and the parts it was hashed from."""

    digest: str
    parts: Mapping[str, Any]  # what went in, to explain a miss


class SourceHasher:
    """Hashes workspace files once per run, however many tasks name them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, str] = {}
        self._globs: dict[str, tuple[str, ...]] = {}

    def matches(self, pattern: str) -> tuple[str, ...]:
        found = self._globs.get(pattern)
        if found is None:
            literal = PurePosixPath(pattern)
            if literal.is_absolute() or ".." in literal.parts:
                found = ()  # validation refuses these: nothing outside the workspace is read
            elif _GLOB_CHARS.intersection(pattern):
                found = self._glob(pattern)
            else:  # a plain path: one stat instead of a directory walk
                path = self.root / literal
                plain = path.is_file() and not EXCLUDED_DIRS.intersection(literal.parts)
                found = (literal.as_posix(),) if plain else ()
            self._globs[pattern] = found
        return found

    def _glob(self, pattern: str) -> tuple[str, ...]:
        return tuple(sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.glob(pattern)
            if p.is_file() and not EXCLUDED_DIRS.intersection(p.relative_to(self.root).parts)
        ))

    def digest(self, rel: str) -> str:
        if rel not in self._files:
            h = hashlib.sha256()
            with open(self.root / rel, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._files[rel] = h.hexdigest()
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
        "upstream": {n: upstream.get(n, "") for n in task.needs},
    }
    digest = "sha256:" + hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()
    return Fingerprint(digest, parts)


def explain_miss(now: Mapping[str, Any], before: Mapping[str, Any] | None) -> str:
    """Why a task's cache entry does not apply any more, in one line."""
    if before is None:
        return "never ran with these inputs"
    changed: list[str] = []
    for key in ("worker", "params", "env"):
        if now.get(key) != before.get(key):
            changed.append("parameters" if key == "params" else key)
    src_now, src_before = now.get("sources", {}), before.get("sources", {})
    for path in sorted(set(src_now) | set(src_before)):
        if src_now.get(path) != src_before.get(path):
            state = "new" if path not in src_before else ("removed" if path not in src_now else "changed")
            changed.append(f"source {path} {state}")
    up_now, up_before = now.get("upstream", {}), before.get("upstream", {})
    changed += [f"upstream {n} changed" for n in sorted(up_now) if up_now[n] != up_before.get(n)]
    return ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "") if changed else "inputs changed"


