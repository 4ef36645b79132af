"""`status` and `omens` refuse policy files that `validate` rejects, as `plan` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import run_cli
from conftest import TRACEBACK, validate_errors, write_workspace

HELLO = """
mission: hello
objective: greet
tasks:
  greet: {run: echo hi}
"""


def refused(root: Path, *args: str) -> list[str]:
    """Run a command that must stop at invalid policy files: its stderr lines."""
    result = run_cli(list(args), root)
    assert TRACEBACK not in result.stderr, result.stderr
    assert (result.exit_code, result.stdout) == (2, ""), result
    return result.stderr.splitlines()


@pytest.mark.parametrize("command", [["status"], ["status", "--format", "json"], ["omens"]])
def test_invalid_evolution_levels_stop_status_and_omens(tmp_path: Path, command: list[str]) -> None:
    root = write_workspace(tmp_path, {"missions/hello.yaml": HELLO, "policies/p.yaml": """
        policy: p
        evolution:
          levels: {APEX: 0}
        """})
    expected = [
        ("policies/p.yaml:3:3: error: evolution: level thresholds must increase from DORMANT to APEX "
        "(DORMANT 0, AWAKENING 1, FORGING 10, SOVEREIGN 50, APEX 0)"),
    ]
    assert validate_errors(root) == expected
    assert refused(root, *command) == expected


def test_omens_refuse_thresholds_that_do_not_rise(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/p.yaml": """
        policy: p
        omens: {warn: 10, intervene: 5, lock: 2}
        """})
    assert refused(root, "omens") == [
        ("policies/p.yaml:2:8: error: omens: need 1 <= warn <= intervene <= lock, "
        "got warn 10, intervene 5, lock 2"),
    ]


def test_a_policy_that_is_not_yaml_stops_status(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/p.yaml": "policy: p\nrules: [\n"})
    expected = ["policies/p.yaml:3:1: error: did not find expected node content while parsing a flow node"]
    assert validate_errors(root) == expected
    assert refused(root, "status") == expected


def test_a_rule_naming_an_unknown_worker_stops_status(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/p.yaml": """
        policy: p
        rules:
          - id: no-shell-in-prod
            when: {worker: shel, mission: prod}
            then: {deny: no shell scripts in prod}
        """})
    assert refused(root, "status") == [
        ("policies/p.yaml:4:20: error: rule 'no-shell-in-prod': unknown worker 'shel' "
        "(did you mean 'shell'?)"),
    ]


def test_broken_files_other_than_policies_leave_omens_alone(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/hello.yaml": "mission: hello\n", "policies/p.yaml": """
        policy: p
        omens: {warn: 2, intervene: 4, lock: 6}
        """})
    assert validate_errors(root) != []  # the mission lacks objective and tasks
    result = run_cli(["omens"], root)
    assert (result.exit_code, result.stderr) == (0, ""), result
    assert result.stdout == "no omens: no repeated failures recorded (warn 2, intervene 4, lock 6)\n"
