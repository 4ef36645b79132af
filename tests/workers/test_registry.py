"""Loading workers: built-ins, workspace plugins and entry points, problems located."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from nexusmon.workers.base import Task
from nexusmon.workers.registry import (
    PluginError,
    PluginProblem,
    Registry,
    builtin_workers,
    load_registry,
)
from nexusmon.workers.shell import ShellWorker

BUILTINS = ["http", "llm", "mission", "noop", "python", "shell", "template"]

GOOD = """
from nexusmon.workers.base import Result


class Greeter:
    name = "greet"
    capabilities = ["RECALL"]
    risk_level = "C"
    requires_approval = True
    params_schema = {"type": "object", "required": ["who"]}

    async def execute(self, task):
        return Result(ok=True, outputs={"greeting": "hello " + task.params["who"]})


class Helper:
    '''Not a worker: no name, no execute.'''
"""


def plugin(root: Path, filename: str, source: str) -> None:
    (root / "plugins").mkdir(parents=True, exist_ok=True)
    (root / "plugins" / filename).write_text(textwrap.dedent(source).lstrip("\n"))


def test_builtins_are_registered_without_a_plugins_folder(tmp_path: Path) -> None:
    registry = load_registry(tmp_path)
    assert registry.names() == BUILTINS
    assert registry.problems == []
    shell = registry.get("shell")
    assert shell is not None and shell.risk_level == "D"
    assert shell.params_schema is not None and set(shell.params_schema["properties"]) == {"run", "cwd"}
    assert registry.get("nope") is None
    assert sorted(w.name for w in builtin_workers()) == BUILTINS


def test_a_good_plugin_is_loaded_and_runs(tmp_path: Path) -> None:
    plugin(tmp_path, "greet.py", GOOD)
    registry = load_registry(tmp_path)
    assert registry.problems == []
    assert registry.names() == sorted([*BUILTINS, "greet"])
    assert registry.origin("greet") == "plugins/greet.py"
    worker = registry.get("greet")
    assert worker is not None
    assert (worker.risk_level, worker.capabilities, worker.requires_approval) == (
        "C",
        ["RECALL"],
        True,
    )
    task = Task(
        id="t",
        mission="m",
        run_id="r",
        worker="greet",
        params={"who": "ops"},
        env={},
        cwd=tmp_path,
        workspace=tmp_path,
    )
    result = asyncio.run(worker.execute(task))
    assert result.outputs == {"greeting": "hello ops"}


def test_plugin_modules_do_not_leak_between_workspaces(tmp_path: Path) -> None:
    modules_before = set(sys.modules)
    for name in ("one", "two"):
        plugin(tmp_path / name, "worker.py", GOOD.replace('"greet"', f'"greet-{name}"'))
    first, second = load_registry(tmp_path / "one"), load_registry(tmp_path / "two")
    assert "greet-one" in first.names() and "greet-two" not in first.names()
    assert "greet-two" in second.names() and "greet-one" not in second.names()
    assert set(sys.modules) == modules_before


def test_syntax_error_is_located_at_its_line(tmp_path: Path) -> None:
    plugin(tmp_path, "broken.py", "import os\n\n\ndef f(:\n    pass\n")
    registry = load_registry(tmp_path)
    assert registry.problems == [
        PluginProblem("plugins/broken.py", 4, "syntax error: invalid syntax")
    ]
    assert registry.names() == BUILTINS


def test_exception_at_import_is_located_in_the_plugin(tmp_path: Path) -> None:
    plugin(
        tmp_path, "raises.py", "X = 1\n\n\ndef helper():\n    return {}['missing']\n\n\nhelper()\n"
    )
    plugin(tmp_path, "needs.py", "import nxmod_not_installed_zz\n")
    plugin(tmp_path, "exits.py", "import sys\nsys.exit(3)\n")
    plugin(tmp_path, "base.py", "class Boom(BaseException):\n    pass\n\n\nraise Boom('no')\n")
    registry = load_registry(tmp_path)
    assert registry.problems == [
        PluginProblem("plugins/base.py", 5, "import failed: Boom: no"),
        PluginProblem("plugins/exits.py", 2, "import failed: SystemExit: 3"),
        PluginProblem(
            "plugins/needs.py",
            1,
            "import failed: ModuleNotFoundError: No module named 'nxmod_not_installed_zz'",
        ),
        PluginProblem("plugins/raises.py", 5, "import failed: KeyError: 'missing'"),
    ]


def test_classes_breaking_the_contract_are_located(tmp_path: Path) -> None:
    plugin(
        tmp_path,
        "bad.py",
        """
        class NoExecute:
            name = "no-execute"
            capabilities = []
            risk_level = "E"
            requires_approval = False
            params_schema = None


        class SyncExecute:
            name = "sync"
            capabilities = []
            risk_level = "E"
            requires_approval = False
            params_schema = None

            def execute(self, task):
                return None


        class BadRisk:
            name = "bad-risk"
            capabilities = []
            risk_level = "Z"
            requires_approval = False
            params_schema = None

            async def execute(self, task):
                return None


        class Clash:
            name = "shell"
            capabilities = []
            risk_level = "E"
            requires_approval = False
            params_schema = None

            async def execute(self, task):
                return None


        class Sparse:
            name = "sparse"

            async def execute(self, task):
                return None
    """,
    )
    problems = load_registry(tmp_path).problems
    assert sorted(problems, key=lambda p: p.line) == [
        PluginProblem(
            "plugins/bad.py", 1, "class NoExecute: missing execute (see the worker plugin contract)"
        ),
        PluginProblem(
            "plugins/bad.py",
            16,
            "class SyncExecute: worker 'sync': 'execute' must be an async method",
            col=5,
        ),
        PluginProblem(
            "plugins/bad.py",
            23,
            "class BadRisk: worker 'bad-risk': risk_level 'Z' is not one of E D C B A S",
            col=5,
        ),
        PluginProblem(
            "plugins/bad.py", 32, "class Clash: worker name 'shell' is a built-in worker", col=5
        ),
        PluginProblem(
            "plugins/bad.py",
            42,
            "class Sparse: missing capabilities, risk_level, requires_approval, params_schema "
            "(see the worker plugin contract)",
        ),
    ]


def test_helper_classes_with_a_name_are_not_workers(tmp_path: Path) -> None:
    plugin(tmp_path, "good.py", GOOD + """

from dataclasses import dataclass


@dataclass
class Item:
    name: str = ""
""")
    registry = load_registry(tmp_path)
    assert registry.problems == []
    assert registry.get("greet") is not None


@pytest.mark.parametrize(("schema", "reason"), [
    ('{"type": "nonsense"}', "Unknown type"),  # fastjsonschema 2.21 adds ": 'nonsense'"
    ('{"properties": {"x": {"type": "string", "pattern": "([a-"}}}',
     "unterminated character set at position 1"),
    ('{"$ref": "http://127.0.0.1:9/schema.json"}',
     "$ref to http://127.0.0.1:9/schema.json is not allowed (only references inside the schema)"),
])
def test_a_broken_params_schema_is_the_plugins_error(tmp_path: Path, schema: str, reason: str) -> None:
    plugin(tmp_path, "bad.py", GOOD.replace('{"type": "object", "required": ["who"]}', schema))
    [problem] = load_registry(tmp_path).problems
    assert (problem.path, problem.line, problem.col) == ("plugins/bad.py", 9, 5)
    assert problem.message.startswith(
        f"class Greeter: worker 'greet': params_schema is not a valid JSON Schema: {reason}")


def test_two_plugins_with_one_name(tmp_path: Path) -> None:
    plugin(tmp_path, "a.py", GOOD)
    plugin(tmp_path, "b.py", GOOD)
    registry = load_registry(tmp_path)
    assert registry.problems == [
        PluginProblem(
            "plugins/b.py",
            5,
            "class Greeter: worker name 'greet' is already defined by plugins/a.py",
            col=5,
        )
    ]


def test_register_refuses_a_duplicate_builtin() -> None:
    registry = Registry()
    registry.register(ShellWorker())
    with pytest.raises(PluginError, match="worker name 'shell' is a built-in worker"):
        registry.register(ShellWorker())


def test_entry_point_workers_are_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "nx_ep_demo-1.0.dist-info").mkdir(parents=True)
    (site / "nx_ep_demo-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nx-ep-demo\nVersion: 1.0\n"
    )
    (site / "nx_ep_demo-1.0.dist-info" / "entry_points.txt").write_text(
        "[nexusmon.workers]\ndemo = nx_ep_demo_mod:Demo\nbroken = nx_ep_demo_missing:Nope\n"
    )
    (site / "nx_ep_demo_mod.py").write_text(
        GOOD.replace('"greet"', '"ep-demo"').replace("class Greeter", "class Demo")
    )
    monkeypatch.syspath_prepend(str(site))
    registry = load_registry(tmp_path / "ws")
    sys.modules.pop("nx_ep_demo_mod", None)
    assert "ep-demo" in registry.names()
    assert registry.origin("ep-demo") == "entry point demo (nx_ep_demo_mod:Demo)"
    assert registry.problems == [
        PluginProblem(
            "entry point broken (nx_ep_demo_missing:Nope)",
            1,
            "cannot load: ModuleNotFoundError: No module named 'nx_ep_demo_missing'",
        )
    ]


def _installed_site(tmp_path: Path) -> Path:
    """A directory that looks like site-packages with one working and one broken entry point."""
    site = tmp_path / "site"
    info = site / "nx_ep_run-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nx-ep-run\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[nexusmon.workers]\ndemo = nx_ep_run_mod:Demo\nbroken = nx_ep_run_missing:Nope\n"
    )
    (site / "nx_ep_run_mod.py").write_text(
        GOOD.replace('"greet"', '"ep-demo"').replace("class Greeter", "class Demo")
        .replace("requires_approval = True", "requires_approval = False")
    )
    return site


MISSIONS = {
    "missions/plain.yaml": "mission: plain\nobjective: built-ins only\ntasks:\n  a: {run: 'true'}\n",
    "missions/installed.yaml": (
        "mission: installed\nobjective: an installed worker\ntasks:\n"
        "  a: {worker: ep-demo, with: {who: x}}\n"
    ),
    "missions/typo.yaml": "mission: typo\nobjective: no such worker\ntasks:\n  a: {worker: ep-dmo}\n",
}


def test_a_broken_installed_plugin_fails_validate_but_not_a_run_that_does_not_need_it(
    tmp_path: Path, make_workspace, nexusmon_process,
) -> None:
    env = {"PYTHONPATH": str(_installed_site(tmp_path))}
    root = make_workspace(tmp_path / "ws", MISSIONS)
    broken = ("entry point broken (nx_ep_run_missing:Nope):1:1: error: cannot load: "
              "ModuleNotFoundError: No module named 'nx_ep_run_missing'")

    validated = nexusmon_process(["validate"], cwd=root, env=env)
    assert validated.exit_code == 1 and broken in validated.stderr

    assert nexusmon_process(["run", "plain"], cwd=root, env=env).exit_code == 0
    installed = nexusmon_process(["run", "installed", "--format", "json"], cwd=root, env=env)
    assert installed.exit_code == 0, installed.stderr
    [task] = json.loads(installed.stdout)["tasks"]
    assert (task["status"], task["outputs"]) == ("succeeded", {"greeting": "hello x"})

    typo = nexusmon_process(["run", "typo"], cwd=root, env=env)
    assert typo.exit_code == 2  # invalid files
    assert "unknown worker 'ep-dmo' in task 'a' (did you mean 'ep-demo'?)" in typo.stderr
    assert broken in typo.stderr, "an unknown worker may be the installed plugin that broke"


def test_what_a_plugin_prints_while_loading_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin(tmp_path, "noisy.py", 'print("plugin import noise")\n' + GOOD)
    assert load_registry(tmp_path).get("greet") is not None
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "plugin import noise\n")


def test_a_params_schema_that_refers_to_itself_is_the_plugins_error(tmp_path: Path) -> None:
    schema = '{"definitions": {"a": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"}'
    plugin(tmp_path, "rec.py", GOOD.replace('{"type": "object", "required": ["who"]}', schema))
    assert load_registry(tmp_path).problems == [PluginProblem(
        "plugins/rec.py", 9, "class Greeter: worker 'greet': params_schema refers to itself without end", col=5)]
