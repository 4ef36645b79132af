"""Workspace file patterns, as a task's ``sources`` and ``artifacts`` read them.

- ``*``, ``?`` and ``[...]`` match within one path segment; ``**`` spans
  folders, and a pattern ending in ``**`` stands for every file below
  (``site/**``, as in ``.gitignore`` and GitHub Actions);
- a plain path naming a folder stands for every file below it;
- only files are matched, and never anything inside ``.git/``, ``.nexusmon/``
  or the state directory, wherever ``--state-dir`` puts it in the workspace.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from nexusmon.errors import NexusmonError

GLOB_CHARS = frozenset("*?[")
ALWAYS_HIDDEN = (".git", ".nexusmon")


class WorkspaceFiles:
    """Expands patterns to sorted workspace-relative POSIX paths of files."""

    def __init__(self, root: Path, state_dir: Path | None = None) -> None:
        self.root = root
        self.state_dir = state_dir
        self.hidden = hidden_prefixes(root, state_dir)
        self._root = str(root)

    def is_hidden(self, rel: str) -> bool:
        """Whether ``rel`` is (inside) version control or nexusmon's own state."""
        return any(rel == h or rel.startswith(h + "/") for h in self.hidden)

    def is_private(self, path: Path) -> bool:
        """:meth:`is_hidden` for a workspace path, also when a symlink or ``..`` leads it
        into the state directory: nothing may write or store there but nexusmon."""
        resolved, root = path.resolve(), self.root.resolve()
        inside = resolved == root or root in resolved.parents
        if inside and self.is_hidden(resolved.relative_to(root).as_posix()):
            return True
        if self.state_dir is None:
            return False
        state = self.state_dir.resolve()
        return resolved == state or state in resolved.parents

    def expand(self, pattern: str) -> tuple[str, ...]:
        if _plain(pattern):  # the common case costs one stat
            try:
                mode = os.stat(os.path.join(self._root, pattern)).st_mode
            except OSError:
                return ()
            if stat.S_ISREG(mode):
                return () if self.is_hidden(pattern) else (pattern,)
        literal = PurePosixPath(pattern)
        if literal.is_absolute() or ".." in literal.parts:
            return ()  # validation refuses these: nothing outside the workspace is read
        rel = literal.as_posix()
        if not GLOB_CHARS.intersection(pattern):
            path = self.root / rel
            if path.is_file():
                return () if self.is_hidden(rel) else (rel,)
            if not path.is_dir():
                return ()
            rel += "/**"
        if literal.name == "**" or rel.endswith("/**"):
            rel += "/*"  # pathlib's trailing "**" matches folders only
        found = (p.relative_to(self.root).as_posix() for p in self.root.glob(rel) if p.is_file())
        return tuple(sorted(_utf8(r) for r in found if not self.is_hidden(r)))


def _plain(pattern: str) -> bool:
    """A relative path with no glob characters that pathlib would not rewrite (no ``.``, ``..``, ``//``)."""
    if GLOB_CHARS.intersection(pattern) or pattern.startswith("/"):
        return False
    return not any(part in ("", ".", "..") for part in pattern.split("/"))


class UnnamablePath(NexusmonError):
    """A matched file whose name is not valid UTF-8: nothing could record it faithfully."""


def _utf8(rel: str) -> str:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise UnnamablePath(f"file name '{shown}' is not valid UTF-8; rename the file") from None
    return rel


def hidden_prefixes(root: Path, state_dir: Path | None) -> tuple[str, ...]:
    """``.git``, ``.nexusmon`` and the state directory's path when it lies in the workspace."""
    if state_dir is None:
        return ALWAYS_HIDDEN
    try:
        inside = os.path.relpath(Path(state_dir).resolve(), root.resolve())
    except ValueError:  # another drive
        return ALWAYS_HIDDEN
    inside = PurePosixPath(Path(inside).as_posix()).as_posix()
    if inside == "." or inside == ".." or inside.startswith("../") or inside in ALWAYS_HIDDEN:
        return ALWAYS_HIDDEN
    return (*ALWAYS_HIDDEN, inside)
