"""The python, template, http, noop and llm workers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nexusmon.workers.base import Result, Task, WorkerPlugin
from nexusmon.workers.http import HttpWorker
from nexusmon.workers.llm import LlmWorker
from nexusmon.workers.noop import NoopWorker
from nexusmon.workers.python import PythonWorker
from nexusmon.workers.template import TemplateWorker

SECRET = "nx-secret-42"


def make_task(tmp_path: Path, worker: str, params: dict[str, Any], **kw: Any) -> Task:
    fields: dict[str, Any] = {
        "id": "t",
        "mission": "m",
        "run_id": "r1",
        "worker": worker,
        "params": params,
        "env": dict(os.environ),
        "cwd": tmp_path,
        "workspace": tmp_path,
    }
    fields.update(kw)
    return Task(**fields)


def execute(worker: WorkerPlugin, task: Task) -> Result:
    return asyncio.run(worker.execute(task))


# ------------------------------------------------------------------ python


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A uniquely named module in the workspace; sys.path and sys.modules restored after."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"nxmod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import asyncio, time\n"
        "def add(a, b):\n"
        "    return {'sum': a + b}\n"
        "def scalar():\n"
        "    return [1, 'two']\n"
        "def odd():\n"
        "    return {1, 2}\n"
        "def boom(token):\n"
        "    raise ValueError(f'bad input {token}\\nsecond line')\n"
        "async def later(x):\n"
        "    await asyncio.sleep(0.01)\n"
        "    return {'x': x}\n"
        "def slow():\n"
        "    time.sleep(0.6)\n"
        "def leave():\n"
        "    raise SystemExit(4)\n"
        "async def leave_async():\n"
        "    raise SystemExit('done')\n"
    )
    yield name
    sys.modules.pop(name, None)


def run_python(tmp_path: Path, function: str, **params: Any) -> Result:
    task = make_task(
        tmp_path, "python", {"function": function, **params}, timeout=0.3, secrets=(SECRET,)
    )
    return execute(PythonWorker(), task)


def test_python_function_gets_keyword_arguments_and_returns_outputs(
    tmp_path: Path, module: str
) -> None:
    result = run_python(tmp_path, f"{module}:add", a=2, b=3)
    assert (result.ok, result.outputs) == (True, {"sum": 5})


def test_python_non_dict_return_becomes_result(tmp_path: Path, module: str) -> None:
    assert run_python(tmp_path, f"{module}:scalar").outputs == {"result": [1, "two"]}
    assert run_python(tmp_path, f"{module}:odd").outputs == {"result": "{1, 2}"}


def test_python_async_function_is_awaited(tmp_path: Path, module: str) -> None:
    assert run_python(tmp_path, f"{module}:later", x="y").outputs == {"x": "y"}


def test_python_exception_fails_with_one_line_and_masked_message(
    tmp_path: Path, module: str
) -> None:
    result = run_python(tmp_path, f"{module}:boom", token=SECRET)
    assert (result.ok, result.failure_kind) == (False, "exception")
    assert result.error == "ValueError: bad input ***"
    assert "Traceback" in result.log and SECRET not in result.log


def test_python_sys_exit_fails_the_task_instead_of_ending_the_runner(
    tmp_path: Path, module: str
) -> None:
    for function, code in (("leave", "4"), ("leave_async", "'done'")):
        result = run_python(tmp_path, f"{module}:{function}")
        assert (result.ok, result.failure_kind) == (False, "exception")
        assert result.error == f"FunctionExited: the function called sys.exit({code})"


def test_python_module_exiting_at_import_fails_the_task(tmp_path: Path) -> None:
    (tmp_path / "nxmod_exits_at_import.py").write_text("import sys\nsys.exit(7)\n")
    try:
        result = run_python(tmp_path, "nxmod_exits_at_import:f")
    finally:
        sys.modules.pop("nxmod_exits_at_import", None)
    assert (result.failure_kind, result.error) == (
        "exception", "importing 'nxmod_exits_at_import:f': SystemExit: 7",
    )


def test_python_timeout(tmp_path: Path, module: str) -> None:
    result = run_python(tmp_path, f"{module}:slow")
    assert (result.failure_kind, result.error) == ("timeout", "timed out after 0.3s")


def test_python_unknown_module_or_function(tmp_path: Path, module: str) -> None:
    missing = run_python(tmp_path, "nxmod_absent_zz:f")
    assert missing.failure_kind == "not_found"
    assert (
        missing.error
        == "cannot load 'nxmod_absent_zz:f': ModuleNotFoundError: No module named 'nxmod_absent_zz'"
    )
    absent = run_python(tmp_path, f"{module}:nope")
    assert absent.failure_kind == "not_found"
    assert absent.error is not None and "nope" in absent.error


def test_python_bad_arguments_are_an_exception(tmp_path: Path, module: str) -> None:
    result = run_python(tmp_path, f"{module}:add", a=1)
    assert result.failure_kind == "exception"
    assert result.error is not None and result.error.startswith("TypeError: ")


# ---------------------------------------------------------------- template


def run_template(tmp_path: Path, **params: Any) -> Result:
    return execute(TemplateWorker(), make_task(tmp_path, "template", params, secrets=(SECRET,)))


def test_template_text_is_written_with_parent_dirs(tmp_path: Path) -> None:
    result = run_template(tmp_path, text="# Notes since v1\n", path="dist/notes.md")
    assert result.ok, result.error
    assert result.outputs == {"path": "dist/notes.md", "bytes": 17}
    assert (tmp_path / "dist/notes.md").read_text() == "# Notes since v1\n"


def test_template_replaces_atomically_without_leftovers(tmp_path: Path) -> None:
    run_template(tmp_path, text="old", path="out/f.txt")
    run_template(tmp_path, text="new", path="out/f.txt")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["f.txt"]
    assert (tmp_path / "out/f.txt").read_text() == "new"


@pytest.mark.parametrize("path", [".nexusmon/ledger.db", ".git/HEAD", "ci-state/ledger.db"])
def test_template_never_writes_into_git_or_the_state_directory(tmp_path: Path, path: str) -> None:
    env = {**os.environ, "NEXUSMON_STATE_DIR": str(tmp_path / "ci-state")}
    task = make_task(tmp_path, "template", {"text": "garbage", "path": path}, env=env)
    result = execute(TemplateWorker(), task)
    assert (result.ok, result.error) == (
        False, f"path '{path}' is inside .git or nexusmon's state directory")
    assert not (tmp_path / path).exists()


def test_template_file_is_rendered_with_vars(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl/notes.j2").write_text(
        "Tag {{ tag }}\n{% for i in items %}- {{ i }}\n{% endfor %}"
    )
    result = run_template(
        tmp_path, file="tpl/notes.j2", vars={"tag": "v2", "items": [1, 2]}, path="notes.md"
    )
    assert result.ok, result.error
    assert (tmp_path / "notes.md").read_text() == "Tag v2\n- 1\n- 2\n"


def test_template_file_undefined_name_and_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "u.j2").write_text("{{ tagg }}")
    (tmp_path / "s.j2").write_text("line one\n{% if %}")
    undefined = run_template(tmp_path, file="u.j2", path="x.md")
    assert (undefined.ok, undefined.error) == (False, "u.j2:1:4: error: 'tagg' is undefined")
    syntax = run_template(tmp_path, file="s.j2", path="x.md")
    assert syntax.error == "s.j2:2:1: error: Expected an expression, got 'end of statement block'"
    assert not (tmp_path / "x.md").exists()


def test_template_sandbox_blocks_unsafe_access(tmp_path: Path) -> None:
    (tmp_path / "evil.j2").write_text("{{ ''.__class__.__mro__ }}")
    result = run_template(tmp_path, file="evil.j2", path="x.md")
    assert not result.ok and "unsafe" in (result.error or "")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/tmp/nx-abs.txt", "path '/tmp/nx-abs.txt' is absolute; give a path inside the workspace"),
        ("../escape.txt", "path '../escape.txt' is outside the workspace"),
        ("a/../../escape.txt", "path 'a/../../escape.txt' is outside the workspace"),
    ],
)
def test_template_refuses_paths_outside_the_workspace(
    tmp_path: Path, path: str, error: str
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result = run_template(workspace, text="x", path=path)
    assert (result.ok, result.error) == (False, error)
    assert not (tmp_path / "escape.txt").exists()


def test_template_refuses_a_template_file_outside_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "secret.j2").write_text("s")
    result = run_template(workspace, file="../secret.j2", path="x.md")
    assert result.error == "path '../secret.j2' is outside the workspace"


# -------------------------------------------------------------------- http


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/json":
            self._send(200, json.dumps({"hello": "world", "token": SECRET}), "application/json")
        elif self.path == "/slow":
            time.sleep(0.6)
            self._send(200, "late", "text/plain")
        elif self.path == "/drip":  # each read is quick, the whole response is not
            self.send_response(200)
            self.send_header("Content-Length", "20")
            self.end_headers()
            for _ in range(20):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                time.sleep(0.15)
        else:
            self._send(500, "kaput", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"body": body.decode(), "auth": self.headers.get("Authorization")}
        self._send(201, json.dumps(echo), "application/json; charset=utf-8")

    def _send(self, status: int, text: str, ctype: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def run_http(tmp_path: Path, **params: Any) -> Result:
    return execute(HttpWorker(), make_task(tmp_path, "http", params, secrets=(SECRET,)))


def test_http_get_json(tmp_path: Path, server: str) -> None:
    result = run_http(tmp_path, url=f"{server}/json")
    assert result.ok, result.error
    assert result.outputs["status"] == 200
    assert result.outputs["json"] == {"hello": "world", "token": "***"}
    assert SECRET not in result.outputs["body"]
    assert result.outputs["headers"]["content-type"] == "application/json"


def test_http_post_json_with_headers_and_expected_status(tmp_path: Path, server: str) -> None:
    result = run_http(
        tmp_path,
        url=f"{server}/echo",
        method="post",
        json={"a": 1},
        headers={"Authorization": "Bearer t0k"},
        expect_status=[200, 201],
    )
    assert result.ok, result.error
    assert result.outputs["json"] == {"body": '{"a":1}', "auth": "Bearer t0k"}


def test_http_post_body(tmp_path: Path, server: str) -> None:
    result = run_http(tmp_path, url=f"{server}/echo", method="POST", body="plain text")
    assert result.outputs["json"]["body"] == "plain text"


def test_http_unexpected_status_fails_with_the_response(tmp_path: Path, server: str) -> None:
    result = run_http(tmp_path, url=f"{server}/boom")
    assert (result.ok, result.failure_kind) == (False, "status")
    assert result.error == f"GET {server}/boom: unexpected status 500"
    assert (result.outputs["status"], result.outputs["body"]) == (500, "kaput")
    assert "json" not in result.outputs
    assert run_http(tmp_path, url=f"{server}/boom", expect_status=500).ok


def test_http_connection_refused_fails(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_http(tmp_path, url=f"http://127.0.0.1:{port}/")
    assert (result.ok, result.failure_kind) == (False, "connection")
    assert result.error is not None
    assert result.error.startswith(f"cannot connect to http://127.0.0.1:{port}/: ConnectError")


def test_http_timeout(tmp_path: Path, server: str) -> None:
    result = run_http(tmp_path, url=f"{server}/slow", timeout=0.2)
    assert (result.failure_kind, result.error) == (
        "timeout",
        f"GET {server}/slow: timed out after 0.2s",
    )


def test_http_timeout_bounds_the_whole_response_not_each_read(tmp_path: Path, server: str) -> None:
    started = time.monotonic()
    result = run_http(tmp_path, url=f"{server}/drip", timeout=0.5)
    assert (result.failure_kind, result.error) == ("timeout", f"GET {server}/drip: timed out after 0.5s")
    assert time.monotonic() - started < 2.0  # the server takes 3 s to send it all


@pytest.mark.parametrize(("params", "error"), [
    ({"url": "http://127.0.0.1:99999/"}, "GET http://127.0.0.1:99999/: port 99999 is out of range (1-65535)"),
    ({"url": "http://127.0.0.1:1/", "headers": {"X-City": "zürich"}},
     "GET http://127.0.0.1:1/: header 'X-City' is not ASCII text (encode it, as RFC 8187 or base64)"),
])
def test_http_requests_no_network_can_make_fail_plainly(tmp_path: Path, params: dict[str, Any], error: str) -> None:
    result = run_http(tmp_path, **params)
    assert (result.ok, result.failure_kind, result.error) == (False, "request", error)


# ------------------------------------------------------------- noop, llm


def test_noop_succeeds_with_no_outputs_and_is_cheap(tmp_path: Path) -> None:
    task = make_task(tmp_path, "noop", {})
    worker = NoopWorker()

    async def many() -> list[Result]:
        return [await worker.execute(task) for _ in range(10_000)]

    started = time.perf_counter()
    results = asyncio.run(many())
    assert time.perf_counter() - started < 0.5
    assert all(r.ok and r.outputs == {} for r in results)


def test_llm_placeholder_fails_clearly(tmp_path: Path) -> None:
    result = execute(LlmWorker(), make_task(tmp_path, "llm", {"prompt": "hi"}))
    assert (result.ok, result.error) == (False, "the llm worker is not available yet")
    assert (LlmWorker.risk_level, LlmWorker.capabilities) == ("C", ["COMPANION"])
