"""What governance decides differently between two git revisions (`nexusmon policy diff`).

Each side is loaded exactly as a workspace is: the revision's ``missions/``,
``runes/``, ``policies/`` and ``plugins/`` files (read with ``git ls-tree`` and
``git show``) are written to a scratch directory and loaded with the real
workspace loader and worker registry; the working tree is loaded in place.
Every mission is compiled with placeholder inputs and every task evaluated
with a neutral :class:`GovState` (no completed missions, no omens): a diff
compares policy and files, never run history. Reasons are compared without
their ``file:line``, so moving a rule inside its file is not a change.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from msgspec import Struct
from msgspec.structs import replace

from nexusmon.compile.compiler import compile_mission
from nexusmon.compile.inputs import placeholder_inputs
from nexusmon.engine.governing import govern_plan
from nexusmon.engine.project import Project, open_project
from nexusmon.errors import Diagnostic, InvalidFiles, Location, NexusmonError, UsageError
from nexusmon.govern.facts import GovState, Reason, Verdict
from nexusmon.govern.gates import STRICTNESS, check_policies, effective_settings
from nexusmon.spec.model import Decision, Rank
from nexusmon.spec.workspace import SETTINGS_FILE, load_workspace
from nexusmon.workers.registry import load_registry

SPEC_FOLDERS = ("missions", "runes", "policies")
PLUGIN_FOLDER = "plugins"
WORKING_TREE = "working tree"
GIT_TIMEOUT_S = 60


class GitError(UsageError):
    """git is missing, the directory is not a repository, or a revision is unknown."""


class Side(Struct, frozen=True):
    """One end of the comparison: a commit, or the working tree (``commit`` None)."""

    label: str
    commit: str | None = None


class Outcome(Struct, frozen=True):
    """What governance decides for one task at one revision."""

    rank: Rank
    decision: Decision
    reasons: tuple[Reason, ...]

    @property
    def key(self) -> tuple[Rank, Decision, tuple[str, ...]]:
        return self.rank, self.decision, self.messages

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(r.message for r in self.reasons)

    def as_json(self) -> dict[str, Any]:
        return {"rank": self.rank.name, "decision": self.decision.value,
                "reasons": [str(r) for r in self.reasons]}


class Compiled(Struct, frozen=True):
    """One mission at one revision: task outcomes in plan order, or why it does not compile."""

    tasks: Mapping[str, Outcome]
    error: str | None = None


class TaskChange(Struct, frozen=True):
    """A task whose rank, decision or reasons differ; ``before``/``after`` None: added/removed."""

    mission: str
    task: str
    before: Outcome | None
    after: Outcome | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        return "removed" if self.after is None else "changed"

    @property
    def direction(self) -> str:
        """stricter | looser | mixed | reasons (only reasons differ); the kind otherwise."""
        if self.before is None or self.after is None:
            return self.kind
        ups = _steps(self.before, self.after)
        downs = _steps(self.after, self.before)
        if ups and downs:
            return "mixed"
        return "stricter" if ups else "looser" if downs else "reasons"

    def as_json(self) -> dict[str, Any]:
        return {"mission": self.mission, "task": self.task, "kind": self.kind,
                "before": self.before.as_json() if self.before else None,
                "after": self.after.as_json() if self.after else None}


class MissionFailure(Struct, frozen=True):
    """A mission that does not compile at one side (or either): its tasks cannot be compared."""

    mission: str
    before: Compiled | None
    after: Compiled | None

    def as_json(self) -> dict[str, Any]:
        return {"mission": self.mission, "task": None, "kind": "error",
                "before": _compiled_json(self.before), "after": _compiled_json(self.after)}


Change = Union[TaskChange, MissionFailure]


class PolicyDiff(Struct, frozen=True):
    base: Side
    head: Side
    changes: tuple[Change, ...]

    def as_json(self) -> dict[str, Any]:
        return {"base": self.base.label, "head": self.head.label,
                "base_commit": self.base.commit, "head_commit": self.head.commit,
                "changes": [c.as_json() for c in self.changes]}


def _steps(low: Outcome, high: Outcome) -> bool:
    """Whether ``high`` is stricter than ``low`` in rank or decision."""
    return high.rank > low.rank or STRICTNESS.index(high.decision) > STRICTNESS.index(low.decision)


def _compiled_json(compiled: Compiled | None) -> dict[str, Any] | None:
    if compiled is None:
        return None
    return {"error": compiled.error} if compiled.error else {"tasks": len(compiled.tasks)}


# ------------------------------------------------------------------ git


def _git(root: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=GIT_TIMEOUT_S,
                              check=False)
    except FileNotFoundError:
        raise GitError("git is not installed; policy diff reads files at git revisions") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S}s") from None
    if done.returncode != 0:
        raise GitError(f"git {args[0]}: {_first_line(done.stderr)}")
    return done.stdout


def _first_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0].removeprefix("fatal: ") if lines else "failed"


def resolve(root: Path, rev: str) -> Side:
    """The commit ``rev`` names; a :class:`GitError` with one clear line otherwise."""
    if not rev or rev.startswith("-"):
        raise UsageError(f"invalid revision {rev!r}")
    _git(root, "rev-parse", "--show-toplevel")  # "not a git repository" comes from here
    try:
        sha = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except GitError:
        raise GitError(f"unknown revision '{rev}'" + _shallow_hint(root)) from None
    return Side(rev, sha.decode().strip())


def _shallow_hint(root: Path) -> str:
    shallow = _git(root, "rev-parse", "--is-shallow-repository").strip() == b"true"
    return " (this is a shallow clone: fetch the revision first)" if shallow else ""


def revision_files(root: Path, commit: str) -> dict[str, bytes]:
    """Workspace files at ``commit`` (paths relative to ``root``) and their bytes."""
    listed = _git(root, "ls-tree", "-r", "-z", "--name-only", commit, "--",
                  *SPEC_FOLDERS, PLUGIN_FOLDER, SETTINGS_FILE)
    names = [n for n in listed.decode("utf-8", "surrogateescape").split("\0") if _wanted(n)]
    return {name: _git(root, "show", f"{commit}:./{name}") for name in names}


def _wanted(name: str) -> bool:
    parts = name.split("/")
    if parts == [SETTINGS_FILE]:
        return True
    if len(parts) != 2:
        return False  # the loader reads only files directly inside each folder
    if parts[0] == PLUGIN_FOLDER:
        return parts[1].endswith(".py")
    return parts[0] in SPEC_FOLDERS and parts[1].endswith((".yaml", ".yml"))


# ------------------------------------------------------------ loading


def project_at(root: Path, side: Side) -> Project:
    """The workspace as it is at ``side``; the working tree when ``side.commit`` is None."""
    if side.commit is None:
        return open_project(root)
    files = revision_files(root, side.commit)
    with tempfile.TemporaryDirectory(prefix="nexusmon-policy-diff-") as scratch:
        base = Path(scratch)
        for name, data in files.items():
            target = base / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        loaded = load_workspace(base)
        registry = load_registry(base)
    # Templates see the real workspace path, so both sides render alike.
    loaded.workspace = replace(loaded.workspace, root=root, plugin_files=())
    return Project(root, loaded, registry)


def side_problems(project: Project, side: Side) -> list[Diagnostic]:
    """Every file problem at ``side``, paths prefixed with the revision (``HEAD~1:policies/...``)."""
    problems = (list(project.loaded.diagnostics) + check_policies(project.workspace.policies, project.registry)
                + project.plugin_diagnostics())
    if side.commit is None:
        return problems
    return [Diagnostic(Location(f"{side.label}:{d.location.path}", d.location.line, d.location.col),
                       d.message, d.hint) for d in problems]


def outcomes(project: Project) -> dict[str, Compiled]:
    """Every mission of ``project`` compiled and governed with a neutral state."""
    settings = effective_settings(project.workspace.policies)
    found: dict[str, Compiled] = {}
    for mission in project.workspace.missions:
        try:
            plan = compile_mission(project.workspace, mission, placeholder_inputs(mission.inputs),
                                   project.registry)
        except NexusmonError as exc:
            found[mission.id] = Compiled({}, _error_text(exc))
            continue
        verdicts = govern_plan(plan, project, GovState(), settings)
        found[mission.id] = Compiled({tid: _outcome(v) for tid, v in verdicts.items()})
    return found


def _outcome(verdict: Verdict) -> Outcome:
    return Outcome(verdict.rank, verdict.decision, verdict.reasons)


def _error_text(exc: NexusmonError) -> str:
    if isinstance(exc, InvalidFiles) and exc.diagnostics:
        more = len(exc.diagnostics) - 1
        return str(exc.diagnostics[0]) + (f" (and {more} more)" if more else "")
    return str(exc)


# ---------------------------------------------------------- comparing


def compare(before: Mapping[str, Compiled], after: Mapping[str, Compiled]) -> list[Change]:
    """Changes mission by mission (sorted by id), tasks in plan order, removed tasks last."""
    changes: list[Change] = []
    for mission in sorted(set(before) | set(after)):
        changes += mission_changes(mission, before.get(mission), after.get(mission))
    return changes


def mission_changes(mission: str, before: Compiled | None, after: Compiled | None) -> list[Change]:
    if (before and before.error) or (after and after.error):
        return [MissionFailure(mission, before, after)]
    old = before.tasks if before else {}
    new = after.tasks if after else {}
    changes: list[Change] = [
        TaskChange(mission, task, old.get(task), outcome)
        for task, outcome in new.items()
        if task not in old or old[task].key != outcome.key
    ]
    changes += [TaskChange(mission, task, outcome, None) for task, outcome in old.items() if task not in new]
    return changes


def policy_diff(root: Path, base: str, head: str | None, mission: str | None = None) -> PolicyDiff:
    """Compare governance at ``base`` with ``head`` (the working tree when None)."""
    sides = [resolve(root, base), resolve(root, head) if head else Side(WORKING_TREE)]
    projects = [project_at(root, side) for side in sides]
    problems = [d for side, p in zip(sides, projects) for d in side_problems(p, side)]
    if problems:
        raise InvalidFiles(problems)
    before, after = (outcomes(p) for p in projects)
    if mission is not None:
        before, after = _only(mission, before, after, sides)
    return PolicyDiff(sides[0], sides[1], tuple(compare(before, after)))


def _only(
    mission: str, before: dict[str, Compiled], after: dict[str, Compiled], sides: Sequence[Side],
) -> tuple[dict[str, Compiled], dict[str, Compiled]]:
    if mission not in before and mission not in after:
        raise UsageError(f"no mission '{mission}' at {sides[0].label} or {sides[1].label}")
    return ({k: v for k, v in before.items() if k == mission},
            {k: v for k, v in after.items() if k == mission})


def summary(diff: PolicyDiff) -> str:
    """One line for the top of a report."""
    if not diff.changes:
        return "No task changes its rank or decision."
    tasks = [c for c in diff.changes if isinstance(c, TaskChange)]
    failures = len(diff.changes) - len(tasks)
    parts = []
    if tasks:
        missions = len({c.mission for c in tasks})
        parts.append(f"Governance differs for {_plural(len(tasks), 'task')} in "
                     f"{_plural(missions, 'mission')}: {_directions(tasks)}")
    if failures:
        parts.append(f"{_plural(failures, 'mission')} could not be compiled")
    return "; ".join(parts) + "."


def _directions(tasks: Sequence[TaskChange]) -> str:
    counts: dict[str, int] = {}
    for change in tasks:
        counts[change.direction] = counts.get(change.direction, 0) + 1
    order = ("stricter", "looser", "mixed", "reasons", "added", "removed")
    words = {"reasons": "reasons only"}
    return ", ".join(f"{counts[k]} {words.get(k, k)}" for k in order if k in counts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
