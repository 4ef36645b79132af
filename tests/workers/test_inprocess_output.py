"""In-process workers (``python`` functions, plugins): their output, their exceptions, their cwd.

What such code writes to ``sys.stdout``/``sys.stderr`` belongs to its task's
log, masked and capped, never to the runner's own output; an exception it
raises (``CancelledError`` included) fails its task; a real cancellation
still stops it.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import run_cli
from engine.helpers import Workspace, statuses, task

SECRET = "s3cr3t-t0ken-4711"

TOOLS = """
import sys
import threading
import time

_both = threading.Barrier(2, timeout=10)


def leak(tok):
    print("my token is", tok)
    sys.stderr.write("stderr says " + tok + "\\n")
    return {}


def chatty(name):
    _both.wait()  # both functions print while the other one runs
    for n in range(50):
        print(f"{name}-line-{n}", flush=True)
        time.sleep(0.001)
    return {}


def flood():
    for _ in range(3000):
        print("x" * 1000)
    print("the end")
    return {}


def print_then_fail(tok):
    print("about to fail with", tok)
    raise RuntimeError("broken")


def spawn():
    import subprocess
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    return {}


def late(tok):
    time.sleep(0.6)
    print("printed after the timeout", tok)
    return {}
"""

PLUGINS = """
import asyncio
import sys

import click

from nexusmon.workers.base import Result


class Bytes:
    name = "bytes"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        click.echo("through click " + task.params["tok"])
        click.secho("styled", fg="red", err=True)
        token = ("bytes " + task.params["tok"] + " caf\u00e9\\n").encode()
        for n in range(len(token)):  # one byte at a time: the secret and a two-byte character split up
            sys.stdout.buffer.write(token[n:n + 1])
        sys.stdout.flush()
        return Result(True)


class Loud:
    name = "loud"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        name = task.params["name"]
        for n in range(20):
            print(f"{name}-says-{n}", task.params.get("tok", ""))
            sys.stderr.write(f"{name}-err-{n}\\n")
            await asyncio.sleep(0.002)
        return Result(True, outputs={"name": name})


class Cancels:
    name = "cancels"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        raise asyncio.CancelledError()


class Exits:
    name = "exits-generator"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        raise GeneratorExit()


class Sleeps:
    name = "sleeps"
    capabilities = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        print("going to sleep")
        await asyncio.sleep(30)
        return Result(True)
"""


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path)
    workspace.write("tools.py", TOOLS)
    workspace.write("plugins/inprocess.py", PLUGINS)
    yield workspace
    workspace.cleanup()


def logs(ws: Workspace, task_id: str) -> str:
    result = ws.nx("logs", "last", task_id)
    assert result.rc == 0, result.err
    return result.out


# -- output --------------------------------------------------------------------------


LEAKS = """
mission: leaks
objective: in-process code that prints a secret
secrets: [MYTOKEN]
tasks:
  function: {worker: python, with: {function: "tools:leak", tok: "{{ secrets.MYTOKEN }}"}}
  plugin: {worker: loud, with: {name: plugin, tok: "{{ secrets.MYTOKEN }}"}}
"""


def test_printed_output_goes_to_the_task_log_masked_and_json_stays_one_document(
    ws: Workspace,
) -> None:
    ws.write("missions/leaks.yaml", LEAKS)
    result = ws.nx("run", "leaks", "--format", "json", env={"MYTOKEN": SECRET})
    assert result.rc == 0, result.err
    doc = json.loads(result.out)  # nothing printed before or after the document
    assert statuses(doc) == {"function": "succeeded", "plugin": "succeeded"}
    assert SECRET not in result.out + result.err
    assert "my token is" not in result.out + result.err
    assert "plugin-says" not in result.out + result.err
    assert logs(ws, "function") == "my token is ***\nstderr says ***\n"
    plugin_log = logs(ws, "plugin")
    assert "plugin-says-0 ***\nplugin-err-0\n" in plugin_log
    assert "plugin-says-19 ***\nplugin-err-19\n" in plugin_log
    assert SECRET not in plugin_log


def test_a_subprocess_a_function_starts_cannot_spoil_the_json_document(ws: Workspace) -> None:
    ws.write("missions/spawns.yaml", """
mission: spawns
objective: a python task whose child process writes to descriptor 1
tasks:
  child: {worker: python, with: {function: "tools:spawn"}}
""")
    for command in (("run", "spawns"), ("resume", "last")):
        result = ws.nx(*command, "--format", "json")
        assert result.rc == 0, result.err
        assert json.loads(result.out)["status"] == "succeeded"  # stdout is the document alone
    assert result.err.count("from a child process") == 0  # resume kept the succeeded task
    first = ws.nx("run", "spawns", "--format", "json")
    assert "from a child process" in first.err and "from a child process" not in first.out


def test_text_progress_shows_no_task_output(ws: Workspace) -> None:
    ws.write("missions/leaks.yaml", LEAKS)
    result = ws.nx("run", "leaks", env={"MYTOKEN": SECRET})
    assert result.rc == 0, result.err
    assert SECRET not in result.out + result.err
    assert "my token is" not in result.out + result.err
    assert "run " in result.out  # the runner's own summary still reaches stdout


def test_click_echo_and_binary_writes_are_captured_too(ws: Workspace) -> None:
    ws.write("missions/bytes.yaml", """
mission: bytes
objective: output that does not go through print()
secrets: [MYTOKEN]
tasks:
  bytes: {worker: bytes, with: {tok: "{{ secrets.MYTOKEN }}"}}
""")
    result = ws.nx("run", "bytes", "--format", "json", env={"MYTOKEN": SECRET})
    assert result.rc == 0, result.err
    json.loads(result.out)
    assert SECRET not in result.out + result.err
    assert logs(ws, "bytes") == "through click ***\nstyled\nbytes *** caf\u00e9\n"  # no colour codes


def test_tasks_running_at_once_keep_their_own_output(ws: Workspace) -> None:
    ws.write("missions/together.yaml", """
mission: together
objective: four in-process tasks printing at the same time
tasks:
  f1: {worker: python, with: {function: "tools:chatty", name: f1}}
  f2: {worker: python, with: {function: "tools:chatty", name: f2}}
  p1: {worker: loud, with: {name: p1}}
  p2: {worker: loud, with: {name: p2}}
""")
    result = ws.nx("run", "together", "--concurrency", "4", "--format", "json")
    assert result.rc == 0, result.err
    json.loads(result.out)
    for name in ("f1", "f2"):
        assert logs(ws, name) == "".join(f"{name}-line-{n}\n" for n in range(50))
    for name in ("p1", "p2"):
        assert logs(ws, name) == "".join(f"{name}-says-{n} \n{name}-err-{n}\n" for n in range(20))


def test_captured_output_is_capped_like_process_output(ws: Workspace) -> None:
    ws.write("missions/flood.yaml", """
mission: flood
objective: three million characters of output
tasks:
  flood: {worker: python, with: {function: "tools:flood"}}
""")
    result = ws.nx("run", "flood", "--format", "json")
    assert result.rc == 0, result.err
    json.loads(result.out)
    log = logs(ws, "flood")
    assert len(log) < 1_100_000
    assert log.startswith("x" * 1000 + "\n")
    assert log.rstrip("\n").endswith("the end")
    assert "bytes truncated ...]" in log


def test_printed_output_comes_before_the_traceback_of_a_failing_function(ws: Workspace) -> None:
    ws.write("missions/fails.yaml", """
mission: fails
objective: a function that prints and raises
secrets: [MYTOKEN]
tasks:
  fails: {worker: python, with: {function: "tools:print_then_fail", tok: "{{ secrets.MYTOKEN }}"}}
""")
    result = ws.nx("run", "fails", "--format", "json", env={"MYTOKEN": SECRET})
    assert result.rc == 1, result.err
    assert task(json.loads(result.out), "fails")["error"] == "RuntimeError: broken"
    assert SECRET not in result.out + result.err
    log = logs(ws, "fails")
    assert log.startswith("about to fail with ***\nTraceback (most recent call last):\n")
    assert log.rstrip().endswith("RuntimeError: broken")


def test_a_timed_out_function_printing_later_reaches_no_terminal(ws: Workspace) -> None:
    ws.write("missions/late.yaml", """
mission: late
objective: a function that prints after its task timed out
secrets: [MYTOKEN]
tasks:
  late: {worker: python, timeout: 0.1, with: {function: "tools:late", tok: "{{ secrets.MYTOKEN }}"}}
""")
    result = ws.nx("run", "late", "--format", "json", env={"MYTOKEN": SECRET})
    assert result.rc == 1, result.err
    assert task(json.loads(result.out), "late")["error"] == "timed out after 0.1s"
    assert "printed after the timeout" not in result.out + result.err


def test_the_real_streams_are_back_after_an_in_process_run(ws: Workspace) -> None:
    ws.write("missions/leaks.yaml", LEAKS)
    before = sys.stdout, sys.stderr
    result = run_cli(["run", "leaks", "--format", "json"], ws.root, env={"MYTOKEN": SECRET})
    assert (sys.stdout, sys.stderr) == before
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)
    assert SECRET not in result.stdout + result.stderr
    assert "my token is" not in result.stdout + result.stderr


# -- exceptions and cancellation ---------------------------------------------------


def test_a_plugin_raising_cancelled_error_or_generator_exit_fails_only_its_task(
    ws: Workspace,
) -> None:
    ws.write("missions/odd.yaml", """
mission: odd
objective: plugins raising exceptions asyncio treats specially
tasks:
  cancels: {worker: cancels}
  exits: {worker: exits-generator}
  after: {needs: cancels, run: touch after.txt}
""")
    result = ws.nx("run", "odd", "--keep-going", "--format", "json")
    assert result.rc == 1, result.err
    doc = json.loads(result.out)
    assert doc["status"] == "failed"
    errors = {t["id"]: (t["status"], t["error"]) for t in doc["tasks"]}
    assert errors == {
        "cancels": ("failed", "worker 'cancels' raised CancelledError"),
        "exits": ("failed", "worker 'exits-generator' raised GeneratorExit"),
        "after": ("cancelled", "upstream 'cancels' failed"),
    }
    assert statuses(ws.show()) == statuses(doc)  # nothing left running or pending
    assert not ws.exists("after.txt")


def test_ctrl_c_still_cancels_a_plugin_task(ws: Workspace) -> None:
    ws.write("missions/sleepy.yaml", """
mission: sleepy
objective: a plugin that sleeps until interrupted
tasks:
  sleeps: {worker: sleeps}
""")
    proc = ws.popen("run", "sleepy", tag="sleepy")
    deadline = time.monotonic() + 30
    while "start     sleeps" not in ws.output("sleepy") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130, ws.output("sleepy")
    shown = ws.show()
    assert shown["status"] == "interrupted"
    assert (task(shown, "sleeps")["status"], task(shown, "sleeps")["error"]) == (
        "cancelled", "interrupted",
    )
    assert "going to sleep" not in ws.output("sleepy")


def test_time_limits_still_stop_a_plugin_task(ws: Workspace) -> None:
    ws.write("missions/limits.yaml", """
mission: limits
objective: a per-task timeout and the run's time limit on plugins
constraints: {max_time_seconds: 1}
tasks:
  attempt: {worker: sleeps, timeout: 0.2}
  whole-run: {worker: sleeps}
""")
    started = time.monotonic()
    doc = ws.run("limits", "--keep-going", rc=1)
    assert time.monotonic() - started < 20
    assert (task(doc, "attempt")["status"], task(doc, "attempt")["error"]) == (
        "failed", "timed out after 0.2s",
    )
    assert (task(doc, "whole-run")["status"], task(doc, "whole-run")["error"]) == (
        "failed", "the run exceeded constraints.max_time_seconds",
    )
    assert logs(ws, "attempt") == "going to sleep\n"


# -- working directory ---------------------------------------------------------------


def test_with_cwd_on_a_python_task_is_a_validation_error(ws: Workspace) -> None:
    ws.write("sub/keep.txt", "")
    ws.write("missions/cwd.yaml", """
mission: cwd
objective: a python task cannot have its own working directory
tasks:
  here: {worker: python, with: {function: "tools:leak", tok: x, cwd: sub}}
""")
    expected = "missions/cwd.yaml:4:70: error: worker 'python' in task 'here': with.cwd must not be there"
    checked = ws.nx("validate")
    assert (checked.rc, checked.err.splitlines()[0]) == (1, expected)
    ran = ws.nx("run", "cwd")
    assert (ran.rc, ran.err.splitlines()[0]) == (2, expected)


def test_nan_and_infinity_outputs_are_stored_and_printed_as_valid_json(ws: Workspace) -> None:
    ws.write("odd.py", "def odd():\n    return {'ratio': float('nan'), 'top': [float('inf'), -float('inf'), 1.5]}\n")
    ws.write("missions/odd.yaml", """
mission: odd
objective: a function returning floats JSON cannot hold
tasks:
  odd: {worker: python, with: {function: "odd:odd"}}
  echo: {needs: [odd], run: "echo {{ tasks.odd.outputs.ratio }}"}
""")
    result = ws.nx("run", "odd", "--format", "json")
    assert result.rc == 0, result.err
    strict = json.loads(result.out, parse_constant=lambda name: pytest.fail(f"bare {name} in the JSON"))
    outputs = {t["id"]: t["outputs"] for t in strict["tasks"]}
    assert outputs["odd"] == {"ratio": "NaN", "top": ["Infinity", "-Infinity", 1.5]}
    assert outputs["echo"]["stdout"] == "NaN"
    assert ws.sql("SELECT json_extract(outputs, '$.top[0]') FROM tasks WHERE task_id = 'odd'") == [("Infinity",)]


NOISY_IMPORT = """
import os
import subprocess
import sys

subprocess.run([sys.executable, "-c", "print('v1.2.3 from a subprocess')"], check=True)
os.write(1, b"raw bytes on descriptor 1\\n")
print("printed at import")


class Quiet:
    name = "quiet"
    capabilities: list = []
    risk_level = "E"
    requires_approval = False
    params_schema = None

    async def execute(self, task):
        from nexusmon.workers.base import Result
        return Result(ok=True)
"""


@pytest.mark.parametrize("command", [
    ("run", "hello", "--format", "json"), ("validate", "--format", "json"), ("plan", "hello", "--format", "json"),
    ("runs", "--format", "json"), ("status", "--format", "json"),
])
def test_a_plugin_that_writes_to_stdout_while_imported_cannot_spoil_json(ws: Workspace, command: tuple[str, ...]) -> None:
    ws.write("plugins/quiet.py", NOISY_IMPORT)
    ws.write("missions/hello.yaml", "mission: hello\nobjective: a run beside a noisy plugin\ntasks:\n  a: {run: 'true'}\n")
    result = ws.nx(*command)
    assert result.rc == 0, result.err
    json.loads(result.out)  # the document alone
    for line in ("v1.2.3 from a subprocess", "raw bytes on descriptor 1", "printed at import"):
        assert line in result.err
