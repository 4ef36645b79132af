"""Parsed files kept by content in the state directory: same result as parsing, never stale."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cli_runner import run_cli
from conftest import error_lines, write_workspace

from nexusmon.spec.doccache import FOLDER, PRUNE_AFTER_S
from nexusmon.spec.workspace import Loaded, load_workspace

MISSION = """
mission: m
objective: kept by content   # a comment
inputs:
  who: {type: string, default: "world"}
tasks:
  hello:
    run: echo "hello {{ inputs.who }}"
    retries: 2
  later:
    needs: [hello]
    worker: noop
"""


def _workspace(tmp_path: Path, mission: str = MISSION) -> tuple[Path, Path]:
    root = write_workspace(tmp_path, {"missions/m.yaml": mission, "runes/r.yaml": """
        rune: r
        version: 1
        tasks:
          only: {worker: noop}
    """})
    state = root / ".nexusmon"
    state.mkdir()
    return root, state


def _retries(loaded: Loaded) -> int:
    return next(t.retries for t in loaded.workspace.missions[0].tasks if t.id == "hello")


def _entries(state: Path) -> list[Path]:
    folder = state / FOLDER
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_file_read_back_is_the_file_parsed(tmp_path: Path) -> None:
    root, state = _workspace(tmp_path)
    first = load_workspace(root)
    assert len(_entries(state)) == 2  # the mission and the rune
    again = load_workspace(root)
    assert not first.diagnostics and not again.diagnostics
    for path, doc in first.documents.items():
        kept = again.documents[path]
        assert (kept.path, kept.data, kept.text, kept.values, kept.keys) == (
            doc.path, doc.data, doc.text, doc.values, doc.keys)
    assert again.workspace.missions == first.workspace.missions
    assert again.workspace.runes == first.workspace.runes


def test_an_edited_file_is_parsed_again(tmp_path: Path) -> None:
    root, _ = _workspace(tmp_path)
    load_workspace(root)
    (root / "missions" / "m.yaml").write_text(MISSION.replace("retries: 2", "retries: 5"), encoding="utf-8")
    assert _retries(load_workspace(root)) == 5


def test_an_invalid_file_is_reported_at_its_place_on_every_load(tmp_path: Path) -> None:
    root, state = _workspace(tmp_path, MISSION.replace("retries: 2", "retries: many"))
    for _ in range(2):
        lines = error_lines(run_cli(["validate"], root).stderr)
        assert len(lines) == 1 and lines[0].startswith("missions/m.yaml:8:14: error:"), lines
    assert len(_entries(state)) == 1  # the rune only


def test_nothing_is_kept_before_the_state_directory_exists(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": MISSION})
    assert run_cli(["validate"], root).exit_code == 0
    assert run_cli(["plan", "m"], root).exit_code == 0
    assert not (root / ".nexusmon").exists()


def test_the_state_directory_given_on_the_command_line_holds_the_entries(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, {"missions/m.yaml": MISSION})
    state = tmp_path / "elsewhere"
    state.mkdir()
    assert run_cli(["--state-dir", str(state), "validate"], root).exit_code == 0
    assert len(_entries(state)) == 1
    assert not (root / ".nexusmon").exists()


def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    root, state = _workspace(tmp_path)
    load_workspace(root)
    for entry in _entries(state):
        entry.write_bytes(b"\x93 torn")
    loaded = load_workspace(root)
    assert not loaded.diagnostics
    assert _retries(loaded) == 2
    assert all(e.read_bytes() != b"\x93 torn" for e in _entries(state))


def test_values_msgpack_cannot_hold_are_parsed_each_time(tmp_path: Path) -> None:
    root, state = _workspace(tmp_path, MISSION.replace('string, default: "world"',
                                                     "integer, default: 123456789012345678901234567890"))
    for _ in range(2):
        loaded = load_workspace(root)
        assert not loaded.diagnostics
        assert loaded.workspace.missions[0].inputs[0].default == 123456789012345678901234567890
    assert len(_entries(state)) == 1  # the rune only


def test_entries_not_written_for_two_weeks_go_when_a_new_one_is_stored(tmp_path: Path) -> None:
    root, state = _workspace(tmp_path)
    load_workspace(root)
    stale = time.time() - PRUNE_AFTER_S - 60
    for entry in _entries(state):
        os.utime(entry, (stale, stale))
    before = {e.name for e in _entries(state)}
    (root / "missions" / "m.yaml").write_text(MISSION + "# edited\n", encoding="utf-8")
    load_workspace(root)
    now = _entries(state)
    assert len(now) == 2 and len(before - {e.name for e in now}) == 1  # the old mission's entry went
    assert all(e.stat().st_mtime > stale + 60 for e in now)  # the rune's was written again
