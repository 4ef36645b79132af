"""The `python` worker in a long-lived process (`watch`): edited workspace modules are
imported afresh, so a re-run never runs, or caches, the code first imported."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexusmon.workers.python import load_function


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "ws"
    root.mkdir()
    yield root
    for name in [n for n, m in sys.modules.items() if str(getattr(m, "__file__", "")).startswith(str(root))]:
        del sys.modules[name]
    sys.path.remove(str(root))


def test_an_edited_module_and_its_importers_are_imported_again(workspace: Path) -> None:
    (workspace / "helperedit.py").write_text("VALUE = 1\n", encoding="utf-8")
    (workspace / "tasksedit.py").write_text("from helperedit import VALUE\n\ndef get():\n    return VALUE\n",
                                            encoding="utf-8")
    assert load_function("tasksedit:get", workspace)() == 1
    assert load_function("tasksedit:get", workspace)() == 1
    (workspace / "helperedit.py").write_text("VALUE = 22\n", encoding="utf-8")
    assert load_function("tasksedit:get", workspace)() == 22


def test_an_unchanged_module_keeps_its_state_between_tasks(workspace: Path) -> None:
    (workspace / "counter.py").write_text("calls = []\n\ndef bump():\n    calls.append(1)\n    return len(calls)\n",
                                          encoding="utf-8")
    assert load_function("counter:bump", workspace)() == 1
    assert load_function("counter:bump", workspace)() == 2
