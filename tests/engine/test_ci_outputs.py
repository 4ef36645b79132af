"""CI outputs of `run`: JUnit XML, the GitHub step summary, plain progress without a TTY."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from .helpers import Result, Workspace

MISSION = """
    mission: ci
    objective: a run with every kind of ending
    tasks:
      ok: {run: echo fine}
      bad: {run: "echo broken; exit 3"}
      child: {needs: [bad], run: echo never}
      skip: {if: "false", run: echo never}
    """
IDS = ["ok", "bad", "child", "skip"]
ANSI = "\x1b["


class CiRuns(NamedTuple):
    ws: Workspace
    text: Result
    json: Result
    junit: Path
    summary: Path


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CiRuns]:
    ws = Workspace(tmp_path_factory.mktemp("ci"))
    ws.write("missions/ci.yaml", MISSION)
    junit = ws.scratch / "reports" / "junit.xml"
    summary = ws.scratch / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    colourful = {"GITHUB_STEP_SUMMARY": str(summary), "NO_COLOR": None, "TERM": "xterm-256color"}
    text = ws.nx("run", "ci", "--keep-going", "--junit", str(junit), env=colourful)
    as_json = ws.nx("run", "ci", "--keep-going", "--format", "json", env=colourful)
    yield CiRuns(ws, text, as_json, junit, summary)
    ws.cleanup()


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    cases = root.findall(".//testcase")
    return {case.attrib["name"]: case for case in cases}


def test_junit_has_one_testcase_per_task_and_a_failure_for_failed_ones(ci: CiRuns) -> None:
    assert ci.text.rc == 1, ci.text.err
    root = ET.parse(ci.junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    assert (suite.attrib["tests"], suite.attrib["failures"]) == ("4", "1")
    cases = junit_cases(ci.junit)
    assert list(cases) == IDS
    failures: list[ET.Element] = [f for case in cases.values() for f in case.findall("failure")]
    assert len(failures) == 1 and cases["bad"].find("failure") is failures[0]
    assert failures[0].attrib["message"] == "exit code 3"
    assert failures[0].text == "exit code 3\n\nbroken\n"  # the error, then what the task printed
    assert cases["ok"].find("skipped") is None
    assert cases["child"].find("skipped") is not None and cases["skip"].find("skipped") is not None


def test_each_run_appends_its_markdown_summary(ci: CiRuns) -> None:
    first = re.search(r"^run (\S+) of ci: failed", ci.text.out, re.MULTILINE)
    assert first is not None, ci.text.out
    second = ci.json.json()["run_id"]
    text = ci.summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")
    assert text.count("### nexusmon `ci`") == 2
    assert text.index(first[1]) < text.index(second)
    for task_id in IDS:
        assert text.count(f"| `{task_id}` |") == 2


def test_progress_without_a_tty_is_plain_lines(ci: CiRuns) -> None:
    for stream in (ci.text.out, ci.text.err, ci.json.out, ci.json.err):
        assert ANSI not in stream
    assert "  FAILED    bad (" in ci.text.out
    assert all(line.startswith(("  ", "run ")) for line in ci.text.out.splitlines()), ci.text.out
    assert ci.json.out.lstrip().startswith("{"), "stdout must hold only the JSON document"
    assert "  FAILED    bad (" in ci.json.err


HOSTILE = """
    mission: hostile
    objective: task ids and errors that break naive XML and markdown
    tasks:
      lint: {worker: python, with: {function: "checks:lint"}}
      test:
        matrix: {case: ["a|b", "`tick`"]}
        run: echo {{ matrix.case | tojson }}
    """


def test_reports_stay_well_formed_with_control_characters_pipes_and_backticks(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/hostile.yaml", HOSTILE)
    ws.write("checks.py", 'def lint():\n    raise RuntimeError("\\x1b[31m3 problems\\x00\\x1b[0m")\n')
    junit, summary = ws.scratch / "out" / "junit.xml", ws.scratch / "summary.md"
    summary.touch()
    result = ws.nx("run", "hostile", "--keep-going", "--junit", str(junit), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.rc == 1, result.err
    cases = junit_cases(junit)  # parses: no raw control character left
    assert list(cases) == ["lint", "test[a|b]", "test[`tick`]"]
    failure = cases["lint"].find("failure")
    assert failure is not None and "\\x1b[31m3 problems\\x00\\x1b[0m" in failure.attrib["message"]
    rows = [line for line in summary.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    cells = [re.split(r"(?<!\\)\|", row)[1:-1] for row in rows]
    assert all(len(row) == 6 for row in cells), rows
    assert [row[0].strip() for row in cells[1:]] == ["`lint`", "`test[a\\|b]`", "``test[`tick`]``"]


def test_a_junit_failure_carries_the_end_of_long_output_and_masks_secrets(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/noisy.yaml", """
        mission: noisy
        objective: a failing task that prints a lot, and a secret
        secrets: [TOKEN]
        tasks:
          noisy:
            run: "seq 1 30000; echo token=$TOKEN; exit 1"
        """)
    junit = ws.scratch / "junit.xml"
    result = ws.nx("run", "noisy", "--junit", str(junit), env={"TOKEN": "hunter2-secret"})
    assert result.rc == 1, result.err
    failure = junit_cases(junit)["noisy"].find("failure")
    assert failure is not None and failure.text is not None
    run_id = ws.show()["run_id"]
    head, _, log = failure.text.partition("\n\n")
    assert head == "exit code 1"
    assert log.startswith("[") and f"earlier characters: nexusmon logs {run_id} noisy]" in log.splitlines()[0]
    assert log.endswith("29999\n30000\ntoken=***\n")
    assert "\n1\n2\n" not in log and len(log) < 70 * 1024
    assert "hunter2-secret" not in junit.read_text(encoding="utf-8")


def test_the_step_summary_escapes_control_characters_and_ends_apart_from_the_next_step(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/ids.yaml", """
        mission: ids
        objective: control characters in matrix ids
        tasks:
          m: {matrix: {v: ["\\e[31mred", "bell\\a"]}, run: "true"}
        """)
    summary = ws.scratch / "summary.md"
    summary.touch()
    result = ws.nx("run", "ids", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.rc == 0, result.err
    text = summary.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x07" not in text
    assert "| `m[\\x1b[31mred]` |" in text and "| `m[bell\\x07]` |" in text
    assert "2 tasks: 2 succeeded" in text
    assert text.endswith("s |\n\n")  # a blank line: the next step's text starts a new block


def test_a_large_run_caps_its_step_summary_and_says_where_the_rest_is(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/big.yaml", "mission: big\nobjective: many tasks\ntasks:\n" + "".join(
        f"  task-number-{i:06d}-with-a-long-name-{'x' * 40}: {{worker: noop}}\n" for i in range(6000)))
    summary = ws.scratch / "summary.md"
    summary.touch()
    doc = ws.run("big", env={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text(encoding="utf-8")
    assert len(text.encode()) <= 512 * 1024 + 200
    assert "6000 tasks: 6000 succeeded" in text
    listed = text.count("| `task-number-")
    assert 0 < listed < 6000
    assert f"{6000 - listed} more tasks are not listed" in text and f"`nexusmon show {doc['run_id']}`" in text


def test_a_child_run_leaves_the_step_summary_to_its_parent(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/child.yaml", "mission: child\nobjective: c\ntasks:\n  a: {run: 'true'}\n")
    ws.write("missions/parent.yaml", "mission: parent\nobjective: p\ntasks:\n"
                                     "  c: {worker: mission, with: {mission: child}}\n")
    summary = ws.scratch / "summary.md"
    summary.touch()
    assert ws.run("parent", env={"GITHUB_STEP_SUMMARY": str(summary)})["status"] == "succeeded"
    text = summary.read_text(encoding="utf-8")
    assert (text.count("### nexusmon"), text.count("### nexusmon `parent`")) == (1, 1)
