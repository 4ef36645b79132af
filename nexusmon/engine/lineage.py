"""Where a run comes from: the git commit of its workspace, and the lineage its artifacts record."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from nexusmon.compile.plan import Plan
from nexusmon.store.ledger import Ledger


def git_commit(root: Path) -> str | None:
    """HEAD of the git repository holding ``root`` (also when ``root`` is a folder inside it)."""
    resolved = root.resolve()
    if not any((folder / ".git").exists() for folder in (resolved, *resolved.parents)):
        return None  # not a repository: no git process spawned
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run_lineage(plan: Plan, run_id: str, ledger: Ledger) -> dict[str, Any]:
    """What the run's artifacts record of where they come from: run, mission and git commit."""
    run = ledger.get_run(run_id)
    return {
        "run_id": run_id, "mission": plan.mission.id, "mission_file": plan.mission.path,
        "mission_digest": plan.mission.digest, "git_commit": run.git_commit if run else None,
    }
