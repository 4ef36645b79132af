"""Workspace modules for the `python` worker never replace a standard or installed module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine.helpers import Workspace, task


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.cleanup()


def test_a_workspace_file_named_like_a_standard_module_is_refused_by_name(ws: Workspace) -> None:
    ws.write("http.py", "def hello():\n    return {'x': 1}\n")
    ws.write("xml.py", "def parse():\n    return {}\n")
    ws.write("tools.py", "def hi():\n    return {'y': 2}\n")
    ws.write("missions/m.yaml", """
        mission: m
        objective: workspace modules beside standard ones
        tasks:
          mine: {worker: python, with: {function: "tools:hi"}}
          shadow: {worker: python, needs: [mine], with: {function: "http:hello"}}
        """)
    result = ws.nx("run", "m", "--keep-going", "--junit", "report.xml", "--format", "json")
    doc = result.json()  # the report needs the real xml package: it was written, JSON printed
    assert (result.rc, task(doc, "mine")["outputs"]) == (1, {"y": 2})
    assert task(doc, "shadow")["error"].startswith(
        "cannot load 'http:hello': ImportError: workspace module 'http' has the name of a standard "
        "or installed module (")
    assert task(doc, "shadow")["error"].endswith("): rename it")
    assert "<testsuite" in ws.read("report.xml")


def test_a_child_run_in_a_workspace_with_a_click_py_still_starts(ws: Workspace) -> None:
    """Child runs start as `python -m nexusmon.child` in the workspace: click.py must not replace click."""
    ws.write("click.py", "raise SystemExit('the workspace click.py was imported')\n")
    ws.write("missions/child.yaml", "mission: child\nobjective: c\ntasks:\n  a: {run: 'true'}\n")
    ws.write("missions/parent.yaml", "mission: parent\nobjective: p\ntasks:\n"
                                     "  c: {worker: mission, with: {mission: child}}\n")
    doc = ws.run("parent")
    assert (doc["status"], task(doc, "c")["outputs"]["status"]) == ("succeeded", "succeeded")
