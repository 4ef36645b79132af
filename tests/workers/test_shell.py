"""The shell worker: scripts, outputs, failures, masking and the direct-exec fast path."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from nexusmon.workers.base import Result, Task
from nexusmon.workers.shell import (
    OutputFileError,
    ShellWorker,
    direct_argv,
    parse_output_file,
    shell_argv,
)

SECRET = "nx-secret-42"


def run_script(tmp_path: Path, script: str, **kw: Any) -> Result:
    fields: dict[str, Any] = {
        "id": "t",
        "mission": "m",
        "run_id": "r1",
        "worker": "shell",
        "params": {"run": script},
        "env": dict(os.environ),
        "cwd": tmp_path,
        "workspace": tmp_path,
        "output_file": tmp_path / ".out" / "t.env",
    }
    fields.update(kw)
    return asyncio.run(ShellWorker().execute(Task(**fields)))


def test_stdout_has_trailing_newlines_stripped(tmp_path: Path) -> None:
    result = run_script(tmp_path, "printf 'first\\nlast\\n\\n'")
    assert result.ok
    assert result.outputs == {"stdout": "first\nlast", "exit_code": 0}
    assert result.log == "first\nlast\n\n"


def test_script_runs_with_bash_e_in_the_task_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    result = run_script(tmp_path, "pwd\nfalse\necho after", cwd=tmp_path / "sub")
    assert not result.ok
    assert result.outputs["stdout"] == str((tmp_path / "sub").resolve())
    assert "after" not in result.log


def test_nonzero_exit_fails_with_the_code(tmp_path: Path) -> None:
    result = run_script(tmp_path, "echo bad; exit 3")
    assert (result.ok, result.failure_kind, result.error) == (False, "exit_code", "exit code 3")
    assert result.outputs == {"stdout": "bad", "exit_code": 3}


def test_output_file_key_values_and_heredoc(tmp_path: Path) -> None:
    script = """
echo "greeting=hi there" >> "$NEXUSMON_OUTPUT"
echo "url=https://x.test/?a=1&b=2" >> "$NEXUSMON_OUTPUT"
echo "" >> "$NEXUSMON_OUTPUT"
printf 'notes<<EOF\\nline one\\nline = two\\nEOF\\n' >> "$NEXUSMON_OUTPUT"
echo answer=42 >> "$NEXUSMON_OUTPUT"
"""
    result = run_script(tmp_path, script)
    assert result.ok, result.error
    assert result.outputs == {
        "greeting": "hi there",
        "url": "https://x.test/?a=1&b=2",
        "notes": "line one\nline = two",
        "answer": "42",
        "stdout": "",
        "exit_code": 0,
    }


def test_a_stale_output_file_is_removed_before_the_script_runs(tmp_path: Path) -> None:
    output_file = tmp_path / "t.env"
    output_file.write_text("stale=1\n")
    result = run_script(tmp_path, 'test -e "$NEXUSMON_OUTPUT" || echo absent', output_file=output_file)
    assert result.outputs == {"stdout": "absent", "exit_code": 0}


def test_the_output_file_directory_is_created_when_missing(tmp_path: Path) -> None:
    output_file = tmp_path / "gone" / "t.env"
    result = run_script(tmp_path, 'echo k=v >> "$NEXUSMON_OUTPUT"', output_file=output_file)
    assert result.ok and result.outputs["k"] == "v"


def test_a_temporary_output_file_is_used_and_removed_when_none_is_given(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, 'echo k=v >> "$NEXUSMON_OUTPUT"; echo "$NEXUSMON_OUTPUT"', output_file=None
    )
    assert result.outputs["k"] == "v"
    assert not Path(result.outputs["stdout"]).exists()


def test_malformed_output_line_fails_the_task_naming_the_line(tmp_path: Path) -> None:
    result = run_script(tmp_path, 'printf "good=1\\noops\\n" >> "$NEXUSMON_OUTPUT"')
    assert (result.ok, result.failure_kind) == (False, "output_file")
    assert result.error == (
        "$NEXUSMON_OUTPUT line 2: expected key=value or key<<DELIMITER, got 'oops'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1bad=x\n", "line 1: invalid output name '1bad'"),
        ("\n\nhas space=x\n", "line 3: invalid output name 'has space'"),
        ("stdout=x\n", "line 1: output 'stdout' is set by the shell worker"),
        ("a=1\nnotes<<EOF\nno end\n", "line 2: 'notes<<EOF' is never closed by a 'EOF' line"),
        ("notes<<\n", "line 1: missing delimiter after 'notes<<'"),
    ],
)
def test_bad_output_files_are_located(text: str, message: str) -> None:
    with pytest.raises(OutputFileError) as caught:
        parse_output_file(text)
    assert str(caught.value).startswith(f"$NEXUSMON_OUTPUT {message}")


def test_secrets_are_masked_in_stdout_log_and_outputs(tmp_path: Path) -> None:
    script = f"""
printf 'nx-sec'; sleep 0.1; printf 'ret-42\\n'
echo "token=Bearer $NX_TOKEN" >> "$NEXUSMON_OUTPUT"
echo {SECRET} >&2
"""
    env = {**os.environ, "NX_TOKEN": SECRET}
    result = run_script(tmp_path, script, env=env, secrets=(SECRET,))
    assert result.ok
    assert result.outputs == {"token": "Bearer ***", "stdout": "***", "exit_code": 0}
    assert SECRET not in result.log and "nx-sec" not in result.log
    assert result.log.count("***") == 2


def test_secrets_are_masked_in_output_file_errors(tmp_path: Path) -> None:
    env = {**os.environ, "NX_TOKEN": SECRET}
    result = run_script(
        tmp_path, 'echo "oops $NX_TOKEN" >> "$NEXUSMON_OUTPUT"', env=env, secrets=(SECRET,)
    )
    assert result.error == (
        "$NEXUSMON_OUTPUT line 1: expected key=value or key<<DELIMITER, got 'oops ***'"
    )


def test_timeout_fails_and_leaves_no_survivors(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    started = time.monotonic()
    result = run_script(tmp_path, f"(sleep 1; touch {marker}) & sleep 5; wait", timeout=0.5)
    assert (result.ok, result.failure_kind) == (False, "timeout")
    assert result.error == "timed out after 0.5s"
    assert time.monotonic() - started < 1.5
    time.sleep(1.0)
    assert not marker.exists()


def test_timeout_message_uses_whole_seconds(tmp_path: Path) -> None:
    result = run_script(tmp_path, "sleep 3", timeout=1)
    assert result.error == "timed out after 1s"


def test_missing_command_is_not_found(tmp_path: Path) -> None:
    direct = run_script(tmp_path, "nosuch-cmd-nx")
    assert (direct.failure_kind, direct.error) == ("not_found", "command not found: nosuch-cmd-nx")
    through_bash = run_script(tmp_path, "echo start\nnosuch-cmd-nx 'arg'")
    assert through_bash.failure_kind == "not_found"
    assert through_bash.outputs["exit_code"] == 127
    assert "nosuch-cmd-nx" in through_bash.log


def test_live_lines_reach_on_output(tmp_path: Path) -> None:
    seen: list[str] = []
    run_script(tmp_path, "echo one; echo two >&2; echo three", on_output=seen.append)
    assert sorted(seen) == ["one", "three", "two"]


def test_cpu_time_is_reported(tmp_path: Path) -> None:
    result = run_script(tmp_path, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
    assert result.ok and result.cpu_s > 0


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("true", ["true"]),
        ("echo hi", ["echo", "hi"]),
        ("true\n", ["true"]),
        ("make  -j2 target VAR=1", ["make", "-j2", "target", "VAR=1"]),
        ("./bin/tool --flag=x a.b/c:d,e@f", ["./bin/tool", "--flag=x", "a.b/c:d,e@f"]),
        ("printf %s x", ["printf", "%s", "x"]),
    ],
)
def test_plain_commands_are_executed_directly(script: str, argv: list[str]) -> None:
    assert direct_argv(script) == argv
    assert shell_argv(script) == argv


@pytest.mark.parametrize(
    "script",
    [
        "echo $HOME",
        "echo 'quoted'",
        'echo "quoted"',
        "ls *.py",
        "ls file?",
        "a | b",
        "a; b",
        "a && b",
        "echo hi > out.txt",
        "cat < in.txt",
        "(true)",
        "echo `date`",
        "echo a\\ b",
        "ls ~/x",
        "FOO=1 env",
        "true\nfalse",
        "cd /tmp",
        "exit 3",
        "export A",
        "echo -n hi",
        "true --help",
        "echo {a,b}",
        "echo #comment",
        "",
        "\ttrue",
    ],
)
def test_anything_else_goes_through_the_shell(script: str) -> None:
    assert direct_argv(script) is None
    argv = shell_argv(script)
    assert argv[-3:] == ["-e", "-c", script]
    assert os.path.basename(argv[0]) in ("bash", "sh")


def test_direct_and_shell_runs_give_the_same_outputs(tmp_path: Path) -> None:
    direct = run_script(tmp_path, "echo hi there")
    through_bash = run_script(tmp_path, "echo 'hi' there")
    assert direct.outputs == through_bash.outputs == {"stdout": "hi there", "exit_code": 0}


def test_a_removed_output_file_is_not_an_error(tmp_path: Path) -> None:
    result = run_script(tmp_path, 'echo k=v > "$NEXUSMON_OUTPUT"; rm "$NEXUSMON_OUTPUT"; echo done')
    assert (result.ok, result.outputs) == (True, {"stdout": "done", "exit_code": 0})
    temporary = run_script(tmp_path, 'rm "$NEXUSMON_OUTPUT"', output_file=None)
    assert temporary.ok


def test_an_unwritable_output_file_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = run_script(tmp_path, "true", output_file=blocker / "t.env")
    assert (result.ok, result.failure_kind) == (False, "output_file")
    assert result.error == f"$NEXUSMON_OUTPUT: Not a directory: {blocker / 't.env'}"


@pytest.mark.parametrize(("script", "code", "name"), [
    ("kill -SEGV $$", 139, "SIGSEGV"),
    ("exec python3 -c 'import os, signal; os.kill(os.getpid(), signal.SIGTERM)'", 143, "SIGTERM"),
])
def test_a_script_killed_by_a_signal_reads_as_a_shell_reports_it(
    tmp_path: Path, script: str, code: int, name: str,
) -> None:
    result = run_script(tmp_path, script)
    assert (result.ok, result.failure_kind, result.outputs["exit_code"]) == (False, "exit_code", code)
    assert result.error == f"killed by {name} (exit code {code})"
