"""Edges of the CLI and the shell worker: closed pipes, unwritable reports, bytes that are not
UTF-8, Ctrl-C at start-up, commands bash would refuse, scripts and outputs too big for argv."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from cli_runner import run_cli
from engine.helpers import TRACEBACK, Workspace, task

from nexusmon.cli.common import run_boundary
from nexusmon.engine.ci import write_reports

UTF8_HINT = "(nexusmon reads names, values and paths as UTF-8 text)"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


# -- 1. a reader that goes away ---------------------------------------------------------------

CHATTY = """
    mission: chatty
    objective: progress lines long after the reader of the first ones went away
    tasks:
      first: {run: "true"}
      wait: {needs: [first], run: "sleep 0.5"}
      one: {needs: [wait], run: "echo one"}
      two: {needs: [one], run: "echo two"}
      last: {needs: [two], run: "LAST"}
    """


def closed_early(ws: Workspace, *args: str, read_lines: int) -> tuple[int, str]:
    """Run nexusmon with stdout on a pipe closed after ``read_lines`` lines; exit code, stderr."""
    with subprocess.Popen(ws.argv("run", "chatty", *args), cwd=ws.root, env=ws.env(),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for _ in range(read_lines):
            proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        return proc.wait(timeout=60), err


@pytest.mark.parametrize(("last", "rc", "status"), [("true", 0, "succeeded"), ("false", 1, "failed")])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_closed_output_pipe_stops_printing_not_the_run(
    ws: Workspace, last: str, rc: int, status: str, fmt: str,
) -> None:
    ws.write("missions/chatty.yaml", CHATTY.replace("LAST", last))
    # text: two progress lines then `| head -2` goes away; json: nobody reads the document
    code, err = closed_early(ws, "--format", fmt, read_lines=2 if fmt == "text" else 0)
    assert code == rc, err
    assert "internal error" not in err and TRACEBACK not in err and "Exception ignored" not in err
    doc = ws.show()
    assert doc["status"] == status
    assert "internal error" not in (doc["error"] or "")
    assert {t["id"]: t["status"] for t in doc["tasks"]} == {
        "first": "succeeded", "wait": "succeeded", "one": "succeeded", "two": "succeeded", "last": status,
    }


def exit_code_with_reader_gone(ws: Workspace, *args: str) -> tuple[int, str]:
    """Run nexusmon ARGS with stdout on a pipe whose reader is already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(ws.argv(*args), cwd=ws.root, env=ws.env(), stdin=subprocess.DEVNULL,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def test_listing_commands_keep_their_exit_code_when_the_reader_goes_away(ws: Workspace) -> None:
    ws.write("missions/many.yaml", "mission: many\nobjective: a long audit trail\ntasks:\n"
             + "".join(f"  t{i}: {{run: 'true'}}\n" for i in range(150)))
    assert ws.nx("run", "many").rc == 0
    for args in (("runs",), ("show", "last"), ("audit",), ("audit", "verify"), ("vault", "ls")):
        code, err = exit_code_with_reader_gone(ws, *args)  # `nexusmon audit | head -0`
        assert (code, err) == (0, ""), args
    with contextlib.closing(sqlite3.connect(str(ws.ledger_file))) as db, db:
        db.execute("UPDATE audit SET payload = replace(payload, 'many', 'evil') WHERE seq = 3")
    assert exit_code_with_reader_gone(ws, "audit", "verify")[0] == 1  # problems found, read or not


# -- 2. reports that cannot be written ----------------------------------------------------------

def test_reports_that_cannot_be_written_are_warnings(tmp_path: Path) -> None:
    doc = {"run_id": "r1", "mission": "m", "status": "succeeded", "tasks": []}
    warnings = write_reports(doc, str(tmp_path),
                             {"GITHUB_STEP_SUMMARY": str(tmp_path / "nonexistent" / "x.md")})
    assert warnings == [
        f"cannot write the JUnit report to {tmp_path}: Is a directory",
        ("cannot append the run summary to GITHUB_STEP_SUMMARY file "
         f"{tmp_path / 'nonexistent' / 'x.md'}: No such file or directory"),
    ]
    assert write_reports(doc, str(tmp_path / "new" / "report.xml"),
                         {"GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}) == []
    assert (tmp_path / "new" / "report.xml").read_bytes().startswith(b"<?xml")
    assert "`m`" in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_an_unwritable_step_summary_warns_and_keeps_the_runs_exit_code(ws: Workspace) -> None:
    ws.write("missions/out.yaml", "mission: out\nobjective: one task\ntasks:\n  hello: {run: echo hi}\n")
    result = ws.nx("run", "out", "--format", "json",
                   env={"GITHUB_STEP_SUMMARY": str(ws.scratch / "nonexistent" / "x.md")})
    assert result.rc == 0, result.err
    assert result.json()["status"] == "succeeded"
    assert str(ws.scratch / "nonexistent" / "x.md") in result.err
    assert "No such file or directory" in result.err


def test_a_file_the_system_refuses_is_an_error_not_a_bug(capsys: pytest.CaptureFixture[str]) -> None:
    @click.command()
    def refuse() -> None:
        Path("/nonexistent/dir/x.md").write_text("")

    code = run_boundary(click.Group("nexusmon", commands={"refuse": refuse}), ["refuse"])
    assert (code, capsys.readouterr().err) == (1, "error: /nonexistent/dir/x.md: No such file or directory\n")


# -- 3. bytes that are not UTF-8 ------------------------------------------------------------------

INPUTS = """
    mission: inp
    objective: one string input
    inputs:
      s: {type: string, default: x}
    tasks:
      t: {run: "echo {{ inputs.s }}"}
    """


def test_an_undecodable_input_value_is_a_usage_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/inp.yaml", INPUTS)
    result = run_cli(["run", "inp", "-i", "s=a\udcffb"], cwd=ws.root)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: argument 's=a\\xffb' is not valid UTF-8 {UTF8_HINT}\n"


def test_undecodable_arguments_from_a_real_argv_are_usage_errors(ws: Workspace) -> None:
    ws.write("missions/inp.yaml", INPUTS)
    for argv in ([b"show", b"a\xff"], [b"run", b"inp", b"-i", b"s=a\xffb"]):
        done = subprocess.run([sys.executable.encode(), b"-m", b"nexusmon", *argv], cwd=ws.root,
                              env=ws.env(), capture_output=True, check=False, timeout=60)
        shown = argv[-1].decode("utf-8", "backslashreplace")
        assert (done.returncode, done.stdout) == (2, b"")
        assert done.stderr.decode() == f"error: argument '{shown}' is not valid UTF-8 {UTF8_HINT}\n"


def test_an_undecodable_argument_with_format_json_still_prints_the_refusal(ws: Workspace) -> None:
    ws.write("missions/inp.yaml", INPUTS)
    for argv in ([b"run", b"inp", b"-i", b"s=a\xffb"], [b"resume", b"\xff"], [b"show", b"\xff"]):
        done = subprocess.run([sys.executable.encode(), b"-m", b"nexusmon", *argv, b"--format", b"json"],
                              cwd=ws.root, env=ws.env(), capture_output=True, check=False, timeout=60)
        doc = json.loads(done.stdout)
        assert (done.returncode, doc["exit_code"], doc["errors"]) == (2, 2, [])
        assert "is not valid UTF-8" in doc["error"]
        if argv[0] != b"show":
            assert (doc["run_id"], doc["status"], doc["tasks"]) == (None, "refused", [])


def test_a_newline_in_a_quoted_name_cannot_forge_a_second_error_line(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/nl.yaml", """
        mission: nl
        objective: a needs entry that holds a newline
        tasks:
          t:
            needs: ["a\\nmissions/other.yaml:1:1: error: injected"]
            run: echo hi
        """)
    result = run_cli(["validate"], cwd=ws.root)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        ("missions/nl.yaml:5:13: error: task 't' needs unknown task "
         "'a\\nmissions/other.yaml:1:1: error: injected'"),
        "1 error in 1 file",
    ]
    located = json.loads(run_cli(["validate", "--format", "json"], cwd=ws.root).stdout)["errors"][0]
    assert "\n" in located["message"]  # JSON carries the value as it is


def test_an_inputs_file_that_is_not_utf8_is_a_located_usage_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/inp.yaml", INPUTS)
    latin1 = tmp_path / "inputs.yaml"
    latin1.write_bytes(b"# inputs\ns: caf\xe9\n")
    result = run_cli(["run", "inp", "--inputs-file", str(latin1)], cwd=ws.root)
    assert result.exit_code == 2
    assert result.stderr == (f"error: inputs file {latin1} is not UTF-8 text: byte 0xe9 at line 2, "
                             "column 7\n")
    binary = tmp_path / "inputs.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\xd0\xff")
    result = run_cli(["run", "inp", "--inputs-file", str(binary)], cwd=ws.root)
    assert result.exit_code == 2
    assert "internal error" not in result.stderr and result.stderr.startswith(f"error: inputs file {binary}")


def test_an_inputs_file_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write("missions/inp.yaml", INPUTS)
    bom = tmp_path / "inputs.yaml"
    bom.write_bytes(b"\xef\xbb\xbfs: caf\xc3\xa9\n")
    result = run_cli(["run", "inp", "--inputs-file", str(bom), "--format", "json"], cwd=ws.root)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["inputs"] == {"s": "café"}


# -- 4. Ctrl-C while starting ----------------------------------------------------------------------

INTERRUPT_AT_IMPORT = """
import os, signal, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C during that import
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv[1:] = ["--version"]
{start}
"""
CONSOLE_SCRIPT = "from nexusmon.entry import main\nsys.exit(main())"  # what pip's wrapper does
PYTHON_M = "import runpy\nrunpy.run_module('nexusmon', run_name='__main__', alter_sys=True)"


@pytest.mark.parametrize("module", ["nexusmon.cli.main", "click", "msgspec", "nexusmon.cli.common"])
@pytest.mark.parametrize("start", [CONSOLE_SCRIPT, PYTHON_M], ids=["console-script", "python-m"])
def test_ctrl_c_while_importing_exits_130_without_a_traceback(module: str, start: str) -> None:
    code = INTERRUPT_AT_IMPORT.format(module=module, start=start)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")


# -- 5. commands the direct-exec fast path cannot start -----------------------------------------------

def test_commands_that_cannot_start_end_as_they_do_in_bash(ws: Workspace) -> None:
    ws.write("notexec.sh", "echo never\n")
    ws.write("noshebang.sh", "echo 'ran without #!'\n").chmod(0o755)
    (ws.root / "adir").mkdir()
    ws.write("missions/sh.yaml", """
        mission: sh
        objective: plain commands that cannot be executed directly
        tasks:
          notexec: {run: ./notexec.sh}
          missing: {run: no-such-command-xyz arg}
          noshebang: {run: ./noshebang.sh}
          adir: {run: ./adir}
        """)
    doc = ws.run("sh", "--keep-going", rc=1)
    ended = {t["id"]: (t["status"], t["outputs"].get("exit_code"), t["error"]) for t in doc["tasks"]}
    assert ended == {
        "notexec": ("failed", 126, "permission denied: ./notexec.sh"),
        "missing": ("failed", 127, "command not found: no-such-command-xyz"),
        "noshebang": ("succeeded", 0, None),
        "adir": ("failed", 126, "is a directory: ./adir"),
    }
    assert task(doc, "noshebang")["outputs"]["stdout"] == "ran without #!"
    logs = {t: ws.nx("logs", "last", t).out for t in ("notexec", "missing", "adir")}
    assert logs["notexec"].endswith("line 1: ./notexec.sh: Permission denied\n")
    assert logs["missing"].endswith("line 1: no-such-command-xyz: command not found\n")
    assert logs["adir"].endswith("line 1: ./adir: Is a directory\n")


# -- 6. scripts and environment values over the kernel's argument limit ------------------------------

def test_scripts_longer_than_one_argument_may_be_still_run(ws: Workspace) -> None:
    ws.write("missions/big.yaml", """
        mission: big
        objective: scripts over 128 KiB
        tasks:
          literal: {run: "echo {{ 'x' * 200000 }} | wc -c"}
          up: {run: "head -c 300000 /dev/zero | tr '\\\\0' y"}
          down: {needs: [up], run: "echo {{ tasks.up.outputs.stdout }} | wc -c; echo $0"}
        """)
    doc = ws.run("big")
    assert task(doc, "literal")["outputs"]["stdout"].strip() == "200001"
    count, zero = task(doc, "down")["outputs"]["stdout"].split()
    assert count == "300001"
    assert zero.startswith(str(ws.state / "tmp"))
    assert sorted(p.name for p in (ws.state / "tmp").iterdir()) == []  # the script files are gone


def test_an_environment_value_over_the_kernel_limit_fails_naming_it(ws: Workspace) -> None:
    ws.write("missions/env.yaml", """
        mission: env
        objective: an environment variable too big for execve
        tasks:
          up: {run: "head -c 300000 /dev/zero | tr '\\\\0' y"}
          down:
            needs: [up]
            env: {BIG: "{{ tasks.up.outputs.stdout }}"}
            run: 'printf %s "$BIG" | wc -c'
        """)
    doc = ws.run("env", rc=1)
    assert task(doc, "down")["error"].endswith(
        ": environment variable BIG is 300004 bytes, over the system's limit of 131071 bytes "
        "for one variable"
    )


# -- 7. $NEXUSMON_OUTPUT has a size limit ------------------------------------------------------------

def test_an_output_file_over_the_limit_fails_the_task(ws: Workspace) -> None:
    ws.write("missions/outp.yaml", """
        mission: outp
        objective: outputs up to the limit, and over it
        tasks:
          fits: {run: 'head -c 999000 /dev/zero | tr "\\\\0" z | sed "s/^/k=/" > "$NEXUSMON_OUTPUT"'}
          huge: {run: 'head -c 5000000 /dev/zero | tr "\\\\0" z | sed "s/^/k=/" > "$NEXUSMON_OUTPUT"'}
        """)
    doc = ws.run("outp", "--keep-going", rc=1)
    assert len(task(doc, "fits")["outputs"]["k"]) == 999000
    huge = task(doc, "huge")
    assert (huge["status"], huge["outputs"]) == ("failed", {"stdout": "", "exit_code": 0})
    assert huge["error"] == ("$NEXUSMON_OUTPUT is 5000002 bytes, over the limit of 1000000 bytes "
                             "(write big results to a file and declare it under artifacts)")
    assert ws.ledger_file.stat().st_size < 10_000_000


def test_an_invalid_settings_file_stops_commands_that_read_state(ws: Workspace) -> None:
    ws.write("missions/m.yaml", "mission: m\nobjective: one task\ntasks:\n  t: {run: 'true'}\n")
    ws.write("nexusmon.yaml", "state_dir: build/state\n")
    assert ws.nx("run", "m").rc == 0
    ws.write("nexusmon.yaml", "state_dir: build/state\nconcurency: 2\n")
    for args in (("runs",), ("audit", "verify"), ("vault", "ls"), ("show", "last")):
        result = ws.nx(*args)
        assert result.rc == 2, args
        assert result.err.startswith("nexusmon.yaml:2:1: error: unknown key 'concurency'"), result.err
    assert not (ws.root / ".nexusmon").exists()  # no other state directory guessed and created
    given = ws.nx("--state-dir", str(ws.root / "build" / "state"), "runs")
    assert given.rc == 0 and "succeeded" in given.out


@pytest.mark.parametrize("args", [
    ["plan", "nope"], ["plan", "broken"], ["show", "nope"], ["status"], ["plan", "ok", "-i", "n=many"],
])
def test_json_commands_print_a_document_when_they_refuse(
    tmp_path: Path, make_workspace, nexusmon_process, args,
) -> None:
    root = make_workspace(tmp_path, {
        "missions/ok.yaml": "mission: ok\nobjective: o\ninputs: {n: {type: integer, default: 1}}\n"
                            "tasks: {a: {run: echo}}\n",
        "missions/broken.yaml": "mission: broken\nobjective: b\ntasks:\n  a: {run: echo, needs: [zz]}\n",
        "policies/bad.yaml": "policy: bad\nrules: [{id: r, when: {worker: shell}, then: {rank: Z}}]\n",
    })
    code, out, err = nexusmon_process([*args, "--format", "json"], cwd=root)
    assert code == 2, err
    doc = json.loads(out)
    assert doc["exit_code"] == 2 and doc["error"]
    assert "error" in err
    if args[:2] == ["plan", "broken"] or args == ["status"]:
        assert doc["errors"] and {"path", "line", "col", "message"} <= set(doc["errors"][0])


def test_runs_reads_without_creating_state_and_names_an_unknown_mission(ws: Workspace) -> None:
    state = ws.scratch / "never-used"
    result = ws.nx("--state-dir", str(state), "runs")
    assert (result.rc, result.out) == (0, "no runs yet\n")
    assert not state.exists()
    ws.write("missions/m.yaml", "mission: m\nobjective: o\ntasks: {a: {run: echo}}\n")
    ws.run("m")
    assert ws.nx("runs", "--mission", "nope").out == "no runs of mission 'nope'\n"
