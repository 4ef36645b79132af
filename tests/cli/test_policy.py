"""`nexusmon policy test` and `nexusmon policy diff` through the real CLI boundary."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest
from cli_runner import run_cli

RULES = r"""
policy: production-safety
rules:
  - id: infra-changes-need-approval
    when: {worker: shell, run_matches: '\b(kubectl|terraform)\s+apply\b'}
    then: {rank: A}
  - id: never-wipe-root
    when: {run_matches: 'rm\s+-rf\s+/(\s|$)'}
    then: {deny: refusing to delete the filesystem root}
"""

PASSING = """
tests:
  - name: terraform apply is gated
    task: {mission: deploy, worker: shell, run: "terraform apply -auto-approve"}
    expect: {rank: A, decision: approve}
"""

FAILING = """
  - name: echo needs review
    task: {mission: deploy, run: "echo hi"}
    expect: {decision: review}
"""

DEPLOY = """
mission: deploy
objective: placeholder for policy tests
tasks:
  a: {worker: noop}
"""


class Outcome(NamedTuple):
    code: int
    out: str
    err: str


def nx(root: Path, *args: str) -> Outcome:
    """Run `nexusmon -C root ARGS` through the same boundary as the console script."""
    return Outcome(*run_cli(["-C", str(root), *args]))


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "missions/deploy.yaml", DEPLOY)
    return root


# ---------------------------------------------------------------- test


def test_passing_tests_exit_0_and_list_uncovered_rules(ws: Path) -> None:
    write(ws, "policies/safety.yaml", RULES + PASSING)
    result = nx(ws, "policy", "test")
    assert result.code == 0, result
    assert result.out.splitlines() == [
        "PASS policies/safety.yaml:11 terraform apply is gated",
        "uncovered rules (no test exercises them):",
        "  policies/safety.yaml:6 never-wipe-root",
        "1 test: 1 passed, 0 failed; 1 of 2 rules covered",
    ]


def test_strict_coverage_fails_on_uncovered_rules(ws: Path) -> None:
    write(ws, "policies/safety.yaml", RULES + PASSING)
    assert nx(ws, "policy", "test", "--strict-coverage").code == 1


def test_a_failing_test_exits_1_with_expected_and_actual(ws: Path) -> None:
    write(ws, "policies/safety.yaml", RULES + PASSING + FAILING)
    result = nx(ws, "policy", "test")
    assert result.code == 1, result
    lines = result.out.splitlines()
    assert lines[:3] == [
        "PASS policies/safety.yaml:11 terraform apply is gated",
        "FAIL policies/safety.yaml:15 echo needs review",
        "     expected decision review, got auto",
    ]
    assert lines[-1] == "2 tests: 1 passed, 1 failed; 1 of 2 rules covered"


def test_json_report(ws: Path) -> None:
    write(ws, "policies/safety.yaml", RULES + PASSING + FAILING)
    result = nx(ws, "policy", "test", "--format", "json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert doc["ok"] is False and doc["passed"] == 1 and doc["failed"] == 1 and doc["rules"] == 2
    assert [(t["name"], t["passed"], t["path"], t["line"]) for t in doc["tests"]] == [
        ("terraform apply is gated", True, "policies/safety.yaml", 11),
        ("echo needs review", False, "policies/safety.yaml", 15),
    ]
    assert doc["uncovered_rules"] == [
        {"rule": "never-wipe-root", "path": "policies/safety.yaml", "line": 6},
    ]


def test_invalid_policy_exits_2_with_the_located_error(ws: Path) -> None:
    write(ws, "policies/safety.yaml", "policy: s\nrules:\n  - id: x\n    when: {wroker: shell}\n"
                                      "    then: {rank: A}\n")
    result = nx(ws, "policy", "test")
    assert result.code == 2
    assert result.err.splitlines() == [
        "policies/safety.yaml:4:12: error: unknown key 'wroker' (did you mean 'worker'?)",
    ]


def test_test_tasks_are_checked_like_rules(ws: Path) -> None:
    write(ws, "policies/p.yaml", """
        policy: p
        tests:
          - {name: coins, task: {mission: deploy, worker: noop, category: coins}, expect: {rank: E}}
          - {name: typo, task: {mission: deploy, worker: shel, run: "true"}, expect: {rank: D}}
          - {name: bare, task: {mission: deploy}, expect: {rank: E}}
        """)
    assert nx(ws, "validate").err.splitlines()[0] == (
        "policies/p.yaml:3:67: error: 'coins' is not one of coin, forge, library, sanctuary "
        "(did you mean 'coin'?)")
    write(ws, "policies/p.yaml", (ws / "policies/p.yaml").read_text().replace("coins}", "coin}"))
    for command in (("validate",), ("policy", "test")):
        result = nx(ws, *command)
        assert result.err.splitlines()[:2] == [
            "policies/p.yaml:4:50: error: policy test 'typo': unknown worker 'shel' (did you mean 'shell'?)",
            "policies/p.yaml:5:24: error: policy test 'bare': the task needs a worker or a run",
        ], command
        assert result.code == (1 if command == ("validate",) else 2)


def test_plugin_workers_are_known_to_policy_tests(ws: Path) -> None:
    write(ws, "plugins/deployer.py", """
        class Deployer:
            name = "deployer"
            capabilities = []
            risk_level = "B"
            requires_approval = True
            params_schema = None

            async def execute(self, task):
                return None
        """)
    write(ws, "policies/p.yaml", """
        policy: p
        tests:
          - name: deployer waits for an operator
            task: {mission: deploy, worker: deployer}
            expect: {rank: B, decision: approve}
        """)
    result = nx(ws, "policy", "test")
    assert result.code == 0, result
    assert result.out.splitlines() == [
        "PASS policies/p.yaml:3 deployer waits for an operator",
        "1 test: 1 passed, 0 failed; 0 of 0 rules covered",
    ]


def test_no_tests_at_all_is_not_a_failure(ws: Path) -> None:
    write(ws, "policies/safety.yaml", RULES)
    result = nx(ws, "policy", "test")
    assert result.code == 0
    assert result.out.splitlines()[-1] == (
        "no policy tests (add `tests:` to a policy file); 0 of 2 rules covered")


# ---------------------------------------------------------------- diff


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
         *args],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "missions/svc.yaml", """
        mission: svc
        objective: two tasks
        tasks:
          steady-task: {run: echo steady}
          risky-task: {run: echo risky}
        """)
    write(root, "policies/p.yaml", "policy: p\nrules: []\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    write(root, "policies/p.yaml", """
        policy: p
        rules:
          - id: gate-risky
            when: {task: risky-task}
            then: {rank: A}
        """)
    git(root, "commit", "-q", "-am", "gate risky")
    return root


def test_diff_markdown_is_a_pr_comment(repo: Path) -> None:
    result = nx(repo, "policy", "diff", "HEAD~1", "HEAD")
    assert result.code == 0, result
    base, head = git(repo, "rev-parse", "HEAD~1", "HEAD").split()
    assert result.out.splitlines() == [
        f"### nexusmon policy diff `HEAD~1..HEAD` ({base[:10]}..{head[:10]})",
        "",
        "Governance differs for 1 task in 1 mission: 1 stricter.",
        "",
        "| mission | task | rank | decision | reasons |",
        "|---|---|---|---|---|",
        ("| svc | `risky-task` | D → A | auto → approve | "
        "+ rank A from rule gate-risky (policies/p.yaml:3)<br>+ default gate A: approve<br>"
        "− rank D from worker shell risk level<br>− default gate D: auto |"),
        "",
        ("_Every mission compiled with placeholder inputs; every task evaluated with no run "
        "history (no completed missions, no omens)._"),
    ]


def test_diff_markdown_keeps_a_task_id_with_backticks_and_pipes_in_its_cell(repo: Path) -> None:
    write(repo, "missions/odd.yaml", """
        mission: odd
        objective: matrix values that markdown would read as syntax
        tasks:
          t:
            matrix: {v: ["`tick`", "a|b"]}
            run: echo {{ matrix.v }}
        """)
    result = nx(repo, "policy", "diff", "HEAD")
    assert result.code == 0, result
    rows = [line for line in result.out.splitlines() if line.startswith("| odd |")]
    assert [row.split(" | ")[1] for row in rows] == ["``t[`tick`]``", "`t[a\\|b]`"]


def test_diff_heading_keeps_a_branch_name_with_backticks_and_html_as_text(repo: Path) -> None:
    branch = "x`<b>bold</b>`y"
    git(repo, "branch", branch, "HEAD~1")
    result = nx(repo, "policy", "diff", branch, "HEAD")
    assert result.code == 0, result
    assert result.out.splitlines()[0].startswith(f"### nexusmon policy diff ``{branch}..HEAD`` (")


def test_diff_against_the_working_tree_without_changes(repo: Path) -> None:
    result = nx(repo, "policy", "diff", "HEAD")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith("### nexusmon policy diff `HEAD..working tree` (base ")
    assert lines[2] == "No task changes its rank or decision."
    assert "|" not in result.out


def test_diff_json(repo: Path) -> None:
    result = nx(repo, "policy", "diff", "HEAD~1", "--format", "json", "--mission", "svc")
    assert result.code == 0, result
    doc = json.loads(result.out)
    assert (doc["base"], doc["head"]) == ("HEAD~1", "working tree")
    assert [(c["task"], c["before"]["decision"], c["after"]["decision"]) for c in doc["changes"]] == [
        ("risky-task", "auto", "approve"),
    ]


def test_diff_unknown_revision_exits_2(repo: Path) -> None:
    result = nx(repo, "policy", "diff", "no-such-branch")
    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines() == ["error: unknown revision 'no-such-branch'"]


def test_diff_mission_that_stops_compiling_is_a_row(repo: Path) -> None:
    write(repo, "missions/svc.yaml", """
        mission: svc
        objective: two tasks
        tasks:
          steady-task: {run: echo steady}
          risky-task: {run: "echo {{ inputs.nope }}"}
        """)
    result = nx(repo, "policy", "diff", "HEAD")
    assert result.code == 0, result
    assert "| svc | *(whole mission)* |  |  | does not compile at working tree: " \
           "missions/svc.yaml:5:21: error: undefined name 'inputs.nope' |" in result.out.splitlines()


def test_diff_escapes_table_cells(repo: Path) -> None:
    write(repo, "policies/p.yaml", """
        policy: p
        rules:
          - id: no-pipes
            when: {task: risky-task}
            then: {deny: "never | pipe <here>"}
        """)
    result = nx(repo, "policy", "diff", "HEAD")
    row = next(line for line in result.out.splitlines() if "risky-task" in line)
    assert "denied by rule no-pipes: never \\| pipe &lt;here>" in row
    assert row.count(" | ") == 4
