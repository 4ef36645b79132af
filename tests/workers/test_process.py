"""The subprocess helper, with real tiny processes."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import pytest

from nexusmon.util import spawn
from nexusmon.util.masking import Masker
from nexusmon.util.process import ProcessResult, run_process

SECRET = "nx-secret-42"


@pytest.fixture(autouse=True, params=["posix_spawn", "popen"])
def start_mode(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both ways of starting a process.

    posix_spawn applies only when the task's directory is the runner's own, so the
    first mode runs from ``tmp_path``; from anywhere else Popen starts it.
    """
    if request.param == "posix_spawn":
        monkeypatch.chdir(tmp_path)
    return str(request.param)


def run(
    argv: list[str],
    cwd: Path,
    timeout: float | None = 10,
    secrets: tuple[str, ...] = (),
    lines: list[str] | None = None,
    env: dict[str, str] | None = None,
    **kw: int,
) -> ProcessResult:
    on_line = lines.append if lines is not None else None
    return asyncio.run(
        run_process(
            argv,
            cwd=cwd,
            env=env if env is not None else dict(os.environ),
            timeout=timeout,
            masker=Masker(secrets),
            on_line=on_line,
            **kw,
        )
    )


def bash(script: str, cwd: Path, **kw: object) -> ProcessResult:
    return run(["bash", "-c", script], cwd, **kw)  # type: ignore[arg-type]


def test_stdout_stderr_and_exit_code_are_captured(tmp_path: Path) -> None:
    lines: list[str] = []
    result = bash("echo out; echo err >&2; exit 3", tmp_path, lines=lines)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert sorted(result.combined.splitlines()) == ["err", "out"]
    assert sorted(lines) == ["err", "out"]
    assert not result.timed_out and result.error is None


def test_env_and_cwd_are_those_given(tmp_path: Path) -> None:
    result = run(
        ["sh", "-c", 'printf "%s %s" "$NX_VALUE" "$(pwd)"'],
        tmp_path,
        env={"PATH": os.environ["PATH"], "NX_VALUE": "given"},
    )
    assert result.stdout == f"given {tmp_path.resolve()}"


def test_secret_printed_in_two_halves_is_masked_everywhere(tmp_path: Path) -> None:
    lines: list[str] = []
    script = "printf 'nx-sec'; sleep 0.1; printf 'ret-42\\n'; echo nx-secret-42 >&2"
    result = bash(script, tmp_path, secrets=(SECRET,), lines=lines)
    assert result.stdout == "***\n"
    assert result.stderr == "***\n"
    assert SECRET not in result.combined and "nx-sec" not in result.combined
    assert lines == ["***", "***"]


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    started = time.monotonic()
    result = bash(f"(sleep 1; touch {marker}) & sleep 5 & sleep 5; wait", tmp_path, timeout=0.3)
    assert result.timed_out
    assert result.error == "timed out after 0.3s"
    assert time.monotonic() - started < 1.5
    time.sleep(1.2)
    assert not marker.exists(), "a child of the timed-out script kept running"


def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    result = bash(f"trap '' TERM; sleep 2.5; touch {marker}", tmp_path, timeout=0.2)
    assert result.timed_out
    assert result.exit_code is not None and result.exit_code < 0
    time.sleep(0.6)
    assert not marker.exists()


def test_background_process_holding_the_output_is_ended_with_the_task(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    started = time.monotonic()
    result = bash(f"(sleep 1; touch {marker}; echo late) & echo early", tmp_path)
    assert result.stdout == "early\n" and result.exit_code == 0
    assert time.monotonic() - started < 0.9
    time.sleep(1.2)
    assert not marker.exists()


def test_huge_output_is_capped_with_a_marker(tmp_path: Path) -> None:
    result = bash("head -c 20000000 /dev/zero | tr '\\0' a; echo; echo the-last-line", tmp_path)
    assert result.exit_code == 0
    assert result.stdout.startswith("a" * 1000)
    assert re.search(r"\n\[\.\.\. 1900\d{4} bytes truncated \.\.\.\]\n", result.stdout)
    assert result.stdout.endswith("the-last-line\n"), "the end of a long log is kept"
    assert len(result.stdout) < 1_000_100
    assert len(result.combined) < 1_000_100


def test_small_cap_keeps_the_head_and_the_tail(tmp_path: Path) -> None:
    result = bash("seq 1 1000", tmp_path, max_capture=12)
    assert result.stdout.startswith("1\n2\n3\n")
    assert "bytes truncated" in result.stdout
    assert result.stdout.endswith("1000\n")


def test_binary_output_does_not_crash(tmp_path: Path) -> None:
    result = bash("printf 'ok\\377\\376\\000end'", tmp_path)
    assert result.exit_code == 0
    assert result.stdout.startswith("ok\ufffd\ufffd")
    assert result.stdout.endswith("end")


def test_missing_command_is_reported_not_raised(tmp_path: Path) -> None:
    result = run(["nosuch-cmd-nx"], tmp_path)
    assert result.exit_code is None
    assert result.error == "command not found: nosuch-cmd-nx"


def test_missing_working_directory_is_reported(tmp_path: Path) -> None:
    result = run(["true"], tmp_path / "gone")
    assert result.exit_code is None
    assert result.error == f"working directory not found: {tmp_path / 'gone'}"


def test_cpu_time_and_peak_memory_are_measured(tmp_path: Path) -> None:
    script = "x = bytearray(40_000_000)\nn = 0\nfor i in range(2_000_000): n += i"
    result = run([sys.executable, "-c", script], tmp_path)
    assert result.exit_code == 0
    assert result.cpu_s > 0.01
    assert result.peak_rss_kb > 40_000


def test_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"

    async def cancel_soon() -> None:
        job = asyncio.ensure_future(
            run_process(
                ["bash", "-c", f"(sleep 0.8; touch {marker}) & sleep 5; wait"],
                cwd=tmp_path,
                env=dict(os.environ),
                timeout=None,
                masker=Masker(()),
            )
        )
        await asyncio.sleep(0.2)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(cancel_soon())
    time.sleep(1.0)
    assert not marker.exists()


def test_concurrent_processes_keep_their_own_output(tmp_path: Path) -> None:
    async def many() -> list[ProcessResult]:
        return await asyncio.gather(
            *(
                run_process(
                    ["sh", "-c", f"sleep 0.0{i % 3}; echo task-{i}"],
                    cwd=tmp_path,
                    env=dict(os.environ),
                    timeout=10,
                    masker=Masker(()),
                )
                for i in range(20)
            )
        )

    results = asyncio.run(many())
    assert [r.stdout for r in results] == [f"task-{i}\n" for i in range(20)]


def test_the_start_mode_is_the_one_expected(tmp_path: Path, start_mode: str) -> None:
    started, out_fd, err_fd = spawn.spawn(["true"], tmp_path, dict(os.environ))
    os.close(out_fd)
    os.close(err_fd)
    if started.popen is not None:
        started.popen.wait()
    else:
        os.waitpid(started.pid, 0)
    assert (started.popen is None) == (start_mode == "posix_spawn")


def test_the_child_leads_its_own_session_with_stdin_from_dev_null(tmp_path: Path) -> None:
    script = "import os, sys; print(os.getsid(0) == os.getpid(), repr(sys.stdin.read()))"
    result = run([sys.executable, "-c", script], tmp_path)
    assert result.stdout == "True ''\n"


def test_sigpipe_is_not_ignored_in_the_child(tmp_path: Path) -> None:
    result = run(["grep", "SigIgn", "/proc/self/status"], tmp_path)
    ignored = int(result.stdout.split()[1], 16)
    assert not ignored & (1 << (13 - 1)), result.stdout  # SIGPIPE is signal 13


def test_descriptors_the_runner_inherited_are_not_passed_on(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        result = run(["ls", "/proc/self/fd"], tmp_path)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert sorted(int(fd) for fd in result.stdout.split()) == [0, 1, 2, 3]  # 3: ls's own listing


def test_the_program_is_looked_up_on_the_tasks_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nx-hello"
    tool.write_text("#!/bin/sh\necho hello from $0\n")
    tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    assert run(["nx-hello"], tmp_path, env=env).stdout == f"hello from {tool}\n"
    assert run(["nx-hello"], tmp_path).error == "command not found: nx-hello"


def test_a_program_that_is_not_executable_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    result = run([str(script)], tmp_path)
    assert (result.exit_code, result.error) == (None, f"permission denied: {script}")
