"""A plugin's declared contract, checked by `validate` and `run`: errors at the attribute at fault."""

from __future__ import annotations

from pathlib import Path

from cli_runner import run_cli
from conftest import TRACEBACK, validate_errors, write_workspace

HELLO = """
mission: hello
objective: greet
tasks:
  greet: {run: echo hi}
"""


def worker(cls: str, name: str, capabilities: str = "[]", risk: str = '"E"') -> str:
    return f"""
        class {cls}:
            name = "{name}"
            capabilities = {capabilities}
            risk_level = {risk}
            requires_approval = False
            params_schema = None

            async def execute(self, task):
                return None
        """


def test_a_misspelt_capability_is_located_at_the_entry_with_a_hint(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {
        "missions/hello.yaml": HELLO,
        "plugins/typo.py": worker("Typo", "typo", '["RECALL", "COMPANON"]'),
        "plugins/case.py": worker("Case", "case", '[\n                "worker_spawn",\n            ]'),
    })
    assert validate_errors(root) == [
        ("plugins/case.py:4:9: error: class Case: worker 'case': unknown capability 'worker_spawn' "
         "(did you mean 'WORKER_SPAWN'?)"),
        ("plugins/typo.py:3:31: error: class Typo: worker 'typo': unknown capability 'COMPANON' "
         "(did you mean 'COMPANION'?)"),
    ]


def test_a_run_refuses_a_workspace_whose_plugin_misspells_a_capability(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {
        "missions/hello.yaml": HELLO,
        "plugins/typo.py": worker("Typo", "typo", '["COMPANON"]'),
    })
    result = run_cli(["run", "hello"], root)
    assert result.exit_code == 2, result
    assert TRACEBACK not in result.stderr
    assert ("plugins/typo.py:3:21: error: class Typo: worker 'typo': unknown capability 'COMPANON' "
            "(did you mean 'COMPANION'?)") in result.stderr.splitlines()
    assert not (root / ".nexusmon").exists()


def test_a_plugins_own_capability_far_from_every_known_one_is_allowed(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {
        "missions/hello.yaml": HELLO,
        "plugins/gpu.py": worker("Gpu", "gpu", '["GPU_ACCESS"]'),
    })
    assert validate_errors(root) == []


def test_a_bad_risk_level_is_located_at_the_attribute(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {
        "missions/hello.yaml": HELLO,
        "plugins/lower.py": worker("Lower", "lower", risk='"c"'),
        "plugins/listed.py": worker("Listed", "listed", risk='["C"]'),
    })
    assert validate_errors(root) == [
        "plugins/listed.py:4:5: error: class Listed: worker 'listed': risk_level of type list is not one of E D C B A S",
        ("plugins/lower.py:4:5: error: class Lower: worker 'lower': risk_level 'c' is not one of E D C B A S "
         "(did you mean 'C'?)"),
    ]


def test_a_policy_capability_in_the_wrong_case_is_a_typo(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/hello.yaml": HELLO, "policies/p.yaml": """
        policy: p
        rules:
          - id: llm-companion
            when: {worker: llm}
            then: {require_capabilities: [companion, GPU_ACCESS]}
        """})
    assert validate_errors(root) == [
        ("policies/p.yaml:5:35: error: rule 'llm-companion': unknown capability 'companion' "
         "(did you mean 'COMPANION'?)"),
    ]
