"""Governance compared between git revisions: real repositories, real loader, real compiler."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from nexusmon.engine.policydiff import (
    GitError,
    MissionFailure,
    PolicyDiff,
    TaskChange,
    policy_diff,
    summary,
)
from nexusmon.errors import InvalidFiles, UsageError

SVC = """
mission: svc
objective: two tasks, one will be gated
tasks:
  steady-task: {run: echo steady}
  risky-task: {run: echo risky}
"""

EMPTY_POLICY = "policy: p\nrules: []\n"

GATE_RISKY = """
policy: p
rules:
  - id: gate-risky
    when: {task: risky-task}
    then: {rank: A}
"""

TERRAFORM = r"""
policy: p
rules:
  - id: infra-changes-need-approval
    when: {worker: shell, run_matches: '\b(kubectl|terraform)\s+apply\b'}
    then: {rank: A}
"""


class Repo:
    """A git repository holding a workspace at ``root / sub``."""

    def __init__(self, root: Path, sub: str = "") -> None:
        self.root = root
        self.workspace = root / sub if sub else root
        self.workspace.mkdir(parents=True)
        self.git("init", "-q")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
             "-c", "commit.gpgsign=false", *args],
            cwd=self.root, check=True, capture_output=True, text=True,
        )
        return done.stdout

    def write(self, rel: str, text: str) -> None:
        path = self.workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo")
    r.write("missions/svc.yaml", SVC)
    r.write("policies/p.yaml", EMPTY_POLICY)
    r.commit("base")
    return r


def rows(diff: PolicyDiff) -> list[tuple[str, str, str, str]]:
    """(mission, task, kind, 'rank decision -> rank decision') per task change."""
    found = []
    for c in diff.changes:
        assert isinstance(c, TaskChange)
        before = f"{c.before.rank.name} {c.before.decision.value}" if c.before else "-"
        after = f"{c.after.rank.name} {c.after.decision.value}" if c.after else "-"
        found.append((c.mission, c.task, c.kind, f"{before} -> {after}"))
    return found


def test_a_policy_change_shows_only_the_task_it_gates(repo: Repo) -> None:
    repo.write("policies/p.yaml", GATE_RISKY)
    repo.commit("gate risky")
    diff = policy_diff(repo.root, "HEAD~1", "HEAD")
    assert rows(diff) == [("svc", "risky-task", "changed", "D auto -> A approve")]
    assert diff.base.label == "HEAD~1" and diff.head.label == "HEAD"
    assert diff.base.commit == repo.git("rev-parse", "HEAD~1").strip()
    after = diff.changes[0].after
    assert after is not None
    assert [str(r) for r in after.reasons] == [
        "rank A from rule gate-risky (policies/p.yaml:3)", "default gate A: approve",
    ]
    assert summary(diff) == "Governance differs for 1 task in 1 mission: 1 stricter."


def test_a_mission_change_that_now_matches_a_rule_shows_up(repo: Repo) -> None:
    repo.write("policies/p.yaml", TERRAFORM)
    repo.commit("terraform rule")
    repo.write("missions/svc.yaml", SVC.replace("echo risky", "terraform apply -auto-approve"))
    repo.commit("risky task applies terraform")
    diff = policy_diff(repo.root, "HEAD~1", "HEAD")
    assert rows(diff) == [("svc", "risky-task", "changed", "D auto -> A approve")]


def test_the_working_tree_is_the_default_head(repo: Repo) -> None:
    repo.write("policies/p.yaml", GATE_RISKY)
    diff = policy_diff(repo.root, "HEAD", None)
    assert diff.head.label == "working tree" and diff.head.commit is None
    assert rows(diff) == [("svc", "risky-task", "changed", "D auto -> A approve")]
    assert policy_diff(repo.root, "HEAD", "HEAD").changes == ()


def test_loosening_added_and_removed_tasks(repo: Repo) -> None:
    repo.write("policies/p.yaml", GATE_RISKY)
    repo.commit("gate risky")
    repo.write("policies/p.yaml", EMPTY_POLICY)
    repo.write("missions/svc.yaml", SVC.replace("steady-task", "calm-task"))
    diff = policy_diff(repo.root, "HEAD", None)
    assert rows(diff) == [
        ("svc", "calm-task", "added", "- -> D auto"),
        ("svc", "risky-task", "changed", "A approve -> D auto"),
        ("svc", "steady-task", "removed", "D auto -> -"),
    ]
    assert summary(diff) == ("Governance differs for 3 tasks in 1 mission: "
                             "1 looser, 1 added, 1 removed.")


def test_moving_a_rule_inside_its_file_is_not_a_change(repo: Repo) -> None:
    repo.write("policies/p.yaml", GATE_RISKY)
    repo.commit("gate risky")
    repo.write("policies/p.yaml", "# risky tasks wait for an operator\n\n" + GATE_RISKY.lstrip())
    diff = policy_diff(repo.root, "HEAD", None)
    assert diff.changes == ()
    assert summary(diff) == "No task changes its rank or decision."


def test_a_mission_that_stops_compiling_is_one_row_with_its_error(repo: Repo) -> None:
    repo.write("missions/svc.yaml", SVC.replace("{run: echo risky}", "{run: \"echo {{ inputs.nope }}\"}"))
    diff = policy_diff(repo.root, "HEAD", None)
    assert len(diff.changes) == 1
    failure = diff.changes[0]
    assert isinstance(failure, MissionFailure)
    assert failure.before is not None and failure.before.error is None
    assert failure.after is not None
    assert failure.after.error == "missions/svc.yaml:5:21: error: undefined name 'inputs.nope'"
    assert failure.as_json()["before"] == {"tasks": 2}
    assert summary(diff) == "1 mission could not be compiled."


def test_a_new_mission_lists_all_its_tasks_as_added(repo: Repo) -> None:
    repo.write("missions/other.yaml", "mission: other\nobjective: o\ntasks:\n  only: {worker: noop}\n")
    diff = policy_diff(repo.root, "HEAD", None)
    assert rows(diff) == [("other", "only", "added", "- -> E auto")]
    assert policy_diff(repo.root, "HEAD", None, mission="svc").changes == ()


def test_unknown_mission_filter_is_a_usage_error(repo: Repo) -> None:
    with pytest.raises(UsageError, match="no mission 'nope' at HEAD or working tree"):
        policy_diff(repo.root, "HEAD", None, mission="nope")


def test_unknown_revision_is_one_clear_line(repo: Repo) -> None:
    with pytest.raises(GitError) as caught:
        policy_diff(repo.root, "no-such-branch", None)
    assert str(caught.value) == "unknown revision 'no-such-branch'"
    assert caught.value.exit_code == 2


def test_outside_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "missions").mkdir()
    with pytest.raises(GitError, match=r"^git rev-parse: not a git repository"):
        policy_diff(tmp_path, "HEAD", None)


def test_invalid_files_at_a_revision_are_located_with_the_revision(repo: Repo) -> None:
    repo.write("policies/bad.yaml", "policy: bad\nrules:\n  - id: x\n    when: {wroker: shell}\n"
                                    "    then: {rank: A}\n")
    repo.commit("typo")
    (repo.workspace / "policies/bad.yaml").unlink()
    with pytest.raises(InvalidFiles) as caught:
        policy_diff(repo.root, "HEAD", None)
    assert [str(d) for d in caught.value.diagnostics] == [
        "HEAD:policies/bad.yaml:4:12: error: unknown key 'wroker' (did you mean 'worker'?)",
    ]


def test_a_workspace_in_a_subdirectory_of_the_repository(tmp_path: Path) -> None:
    r = Repo(tmp_path / "mono", sub="ops")
    r.write("missions/svc.yaml", SVC)
    r.write("policies/p.yaml", EMPTY_POLICY)
    r.write("missions/nested/ignored.yaml", "not: a mission\n")
    r.commit("base")
    r.write("policies/p.yaml", GATE_RISKY)
    r.commit("gate")
    diff = policy_diff(r.workspace, "HEAD~1", "HEAD")
    assert rows(diff) == [("svc", "risky-task", "changed", "D auto -> A approve")]


PLUGIN = """
class Deployer:
    name = "deployer"
    capabilities = []
    risk_level = "{risk}"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        return None
"""


def test_plugins_are_read_at_each_revision(repo: Repo) -> None:
    repo.write("plugins/deployer.py", PLUGIN.format(risk="B"))
    repo.write("missions/ship.yaml", "mission: ship\nobjective: s\ntasks:\n  go: {worker: deployer}\n")
    repo.commit("deployer")
    repo.write("plugins/deployer.py", PLUGIN.format(risk="D"))
    diff = policy_diff(repo.root, "HEAD", None)
    assert rows(diff) == [("ship", "go", "changed", "B review -> D auto")]
    assert summary(diff) == "Governance differs for 1 task in 1 mission: 1 looser."


def test_json_document(repo: Repo) -> None:
    repo.write("policies/p.yaml", GATE_RISKY)
    doc = policy_diff(repo.root, "HEAD", None).as_json()
    assert doc["base"] == "HEAD" and doc["head"] == "working tree"
    assert doc["head_commit"] is None
    assert doc["changes"] == [{
        "mission": "svc", "task": "risky-task", "kind": "changed",
        "before": {"rank": "D", "decision": "auto",
                   "reasons": ["rank D from worker shell risk level", "default gate D: auto"]},
        "after": {"rank": "A", "decision": "approve",
                  "reasons": ["rank A from rule gate-risky (policies/p.yaml:3)",
                              "default gate A: approve"]},
    }]
