"""Policy checks on real workspace files: rule workers, gate order, rule ids, operator keys."""

from __future__ import annotations

import base64
from pathlib import Path

from conftest import validate_errors, write_workspace

KEY = "ed25519:" + base64.b64encode(bytes(range(32))).decode()
HELLO = """
mission: hello
objective: greet
tasks:
  greet: {run: echo hi}
"""
DEPLOYER_PLUGIN = """
class Deployer:
    name = "deployer"
    capabilities = []
    risk_level = "B"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        return None
"""


def worker_errors(root: Path) -> list[str]:
    """`nexusmon validate`'s errors: rules are checked against the workspace's real workers."""
    return validate_errors(root)


# ------------------------------------------------------------ when.worker


def test_unknown_worker_in_a_rule_is_located_with_a_hint(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/hello.yaml": HELLO, "policies/x.yaml": """
        policy: x
        rules:
          - id: no-shell-in-prod
            when: {worker: shel, mission: hello}
            then: {deny: no shell scripts here}
        """})
    assert worker_errors(root) == [
        ("policies/x.yaml:4:20: error: rule 'no-shell-in-prod': unknown worker 'shel' "
        "(did you mean 'shell'?)"),
    ]


def test_each_unknown_name_of_a_worker_list_is_located(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/x.yaml": """
        policy: x
        rules:
          - id: risky
            when:
              worker: [llm, pyhton, zzz]
            then: {rank: A}
        """})
    assert worker_errors(root) == [
        "policies/x.yaml:5:21: error: rule 'risky': unknown worker 'pyhton' (did you mean 'python'?)",
        ("policies/x.yaml:5:29: error: rule 'risky': unknown worker 'zzz' "
        "(known workers: http, llm, mission, noop, python, shell, template)"),
    ]


def test_a_glob_is_not_a_worker_name(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/x.yaml": """
        policy: x
        rules:
          - id: scripts
            when: {worker: "sh*"}
            then: {rank: B}
        """})
    assert worker_errors(root) == [
        ("policies/x.yaml:4:20: error: rule 'scripts': unknown worker 'sh*' "
        "(`when.worker` takes exact worker names, not globs)"),
    ]


def test_workspace_plugin_workers_are_known(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"plugins/deployer.py": DEPLOYER_PLUGIN, "policies/x.yaml": """
        policy: x
        rules:
          - id: deploys-are-a
            when: {worker: [deployer, shell]}
            then: {rank: A}
        """})
    assert worker_errors(root) == []
    assert validate_errors(root) == []


# ------------------------------------------------------------ gate order


def test_gates_that_get_less_strict_as_rank_rises_are_located(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/gates.yaml": """
        policy: gates
        gates: {E: auto, D: approve, C: auto, B: review, A: blocked, S: approve}
        """})
    hint = "(a gate must not get less strict as rank rises: auto < review < approve < blocked)"
    assert validate_errors(root) == [
        f"policies/gates.yaml:2:33: error: gates: C 'auto' is less strict than D 'approve' below it {hint}",
        f"policies/gates.yaml:2:65: error: gates: S 'approve' is less strict than A 'blocked' below it {hint}",
    ]


def test_gates_left_out_keep_their_defaults_in_the_order_check(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/gates.yaml": """
        policy: gates
        gates:
          E: review
          A: blocked
        """})
    hint = "(a gate must not get less strict as rank rises: auto < review < approve < blocked)"
    assert validate_errors(root) == [
        ("policies/gates.yaml:3:6: error: gates: D 'auto' (the default) is less strict than "
        f"E 'review' below it {hint}"),
        ("policies/gates.yaml:4:6: error: gates: S 'approve' (the default) is less strict than "
        f"A 'blocked' below it {hint}"),
    ]


def test_rising_or_equal_gates_are_valid(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/hello.yaml": HELLO, "policies/gates.yaml": """
        policy: gates
        gates: {E: review, D: review, C: approve, B: approve, A: blocked, S: blocked}
        """})
    assert validate_errors(root) == []


# ------------------------------------------------------------ rule ids


def test_duplicate_rule_id_in_one_file_is_located_at_the_second(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/x.yaml": """
        policy: x
        rules:
          - id: gate-ship
            when: {task: ship}
            then: {rank: A}
          - id: gate-ship
            when: {task: other}
            then: {deny: nope}
        """})
    assert validate_errors(root) == [
        ("policies/x.yaml:6:9: error: rule id 'gate-ship' is already declared at policies/x.yaml:3 "
        "(rule ids must be unique across policy files: reasons and tests name them)"),
    ]


def test_duplicate_rule_id_across_files(tmp_path: Path) -> None:
    rule = """
        policy: {name}
        rules:
          - id: never-wipe-root
            when: {{run_matches: 'rm -rf /'}}
            then: {{deny: refused}}
        """
    root = write_workspace(tmp_path, {"policies/a.yaml": rule.format(name="a"),
                                      "policies/b.yaml": rule.format(name="b")})
    assert validate_errors(root) == [
        ("policies/b.yaml:3:9: error: rule id 'never-wipe-root' is already declared at policies/a.yaml:3 "
        "(rule ids must be unique across policy files: reasons and tests name them)"),
    ]


# ------------------------------------------------------------ operator keys


def test_operator_key_that_is_not_ed25519_is_located(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"policies/ops.yaml": f"""
        policy: ops
        operators:
          - {{name: bob, public_key: "ed25519:AAAA", may_approve: [A]}}
          - {{name: carol, public_key: "ed25519:A", may_approve: [A]}}
          - {{name: alice, public_key: "{KEY}", may_approve: [A, S]}}
        """})
    hint = "(paste the `ed25519:...` line `nexusmon keygen` printed)"
    assert validate_errors(root) == [
        ("policies/ops.yaml:3:29: error: operator 'bob': public key 'ed25519:AAAA' holds 3 bytes; "
        f"an Ed25519 key has 32 {hint}"),
        f"policies/ops.yaml:4:31: error: operator 'carol': public key 'ed25519:A' is not valid base64 {hint}",
    ]


# ------------------------------------------------------------ scoring


def test_scoring_with_every_weight_at_zero_is_refused(tmp_path: Path) -> None:
    zeros = ", ".join(f"{axis}: 0" for axis in (
        "compute_cost", "maintainability", "attention", "economic_value", "trust", "prediction_confidence"))
    root = write_workspace(tmp_path, {"missions/hello.yaml": HELLO, "policies/s.yaml": f"""
        policy: s
        scoring: {{weights: {{{zeros}}}}}
        """})
    assert validate_errors(root) == [
        ("policies/s.yaml:2:10: error: scoring: every axis has weight 0, so no score can be computed "
        "(give at least one axis a weight above 0)")]
    (root / "policies/s.yaml").write_text(
        (root / "policies/s.yaml").read_text().replace("trust: 0", "trust: 1"), encoding="utf-8")
    assert validate_errors(root) == []
