"""The ``template`` worker: writes rendered text to a file in the workspace.

Parameters (``with``):

- ``text``: the content, already rendered with the mission context (a value that
  is not text, from a lone ``{{ expr }}``, is written as a template renders it); or
- ``file``: a Jinja2 template in the workspace, rendered here in the sandbox
  mission templates use (strict undefined names, the same size and time
  limits); its context is the ``vars`` mapping (pass what it needs:
  ``vars: {tag: "{{ inputs.tag }}"}``).
- ``path``: where to write, relative to the task's working directory; it must
  stay inside the workspace. Parent folders are created; the file is replaced
  atomically.

Outputs: ``path`` (relative to the workspace root) and ``bytes`` written.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nexusmon.errors import Diagnostic, Location, NexusmonError
from nexusmon.util.jsonvalue import as_text
from nexusmon.util.masking import Masker
from nexusmon.util.wsglob import WorkspaceFiles
from nexusmon.workers.base import Result, Task

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {},  # a lone `{{ expr }}` keeps its type: any value is written as its text
        "file": {"type": "string"},
        "path": {"type": ["string", "number"], "minLength": 1},
        "vars": {"type": "object"},
        "cwd": {"type": "string"},
    },
    "required": ["path"],
    "oneOf": [{"required": ["text"]}, {"required": ["file"]}],
    "additionalProperties": False,
}


class TemplateError(NexusmonError):
    """A path outside the workspace or a template that does not render."""


class TemplateWorker:
    """Renders ``text`` or a template ``file`` to ``path``."""

    name = "template"
    capabilities: list[str] = []  # noqa: RUF012 - the plugin contract's attribute
    risk_level = "E"
    requires_approval = False
    params_schema: dict[str, Any] | None = PARAMS_SCHEMA

    async def execute(self, task: Task) -> Result:
        try:
            target = inside_workspace(task.workspace, task.cwd, as_text(task.params.get("path", "")))
            if target.is_dir() or target == task.workspace.resolve():
                raise TemplateError(f"path {task.params.get('path')!r} is a directory; give a file path")
            _refuse_state(task, target)
            content = _content(task)
            size = write_atomically(target, content.encode("utf-8"))
        except (TemplateError, OSError) as exc:
            error = Masker(task.secrets).mask(str(exc))
            return Result(ok=False, error=error, failure_kind="template")
        relative = target.relative_to(task.workspace.resolve()).as_posix()
        return Result(ok=True, outputs={"path": relative, "bytes": size})


def inside_workspace(workspace: Path, base: Path, path: str) -> Path:
    """``path`` (relative to ``base``) resolved; refuses anything outside ``workspace``."""
    if not path:
        raise TemplateError("'path' is empty")
    if "\x00" in path:
        raise TemplateError(f"path {path!r} contains a NUL byte")
    if os.path.isabs(path):
        raise TemplateError(f"path {path!r} is absolute; give a path inside the workspace")
    root = workspace.resolve()
    resolved = (base / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise TemplateError(f"path {path!r} is outside the workspace")
    return resolved


def _refuse_state(task: Task, target: Path) -> None:
    """Never write into ``.git/``, ``.nexusmon/`` or the state directory (ledger, vault)."""
    state = task.env.get("NEXUSMON_STATE_DIR")
    if WorkspaceFiles(task.workspace, Path(state) if state else None).is_private(target):
        raise TemplateError(
            f"path {task.params.get('path')!r} is inside .git or nexusmon's state directory")


def write_atomically(target: Path, data: bytes) -> int:
    """Write ``data`` to a temporary sibling, then rename it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return len(data)


def _content(task: Task) -> str:
    if "file" not in task.params:
        return as_text(task.params.get("text", ""))
    source = inside_workspace(task.workspace, task.cwd, as_text(task.params["file"]))
    name = source.relative_to(task.workspace.resolve()).as_posix()
    variables = task.params.get("vars") or {}
    if not isinstance(variables, Mapping):
        raise TemplateError("'vars' must be a mapping")
    return render_file(task.workspace, name, variables)


def render_file(workspace: Path, name: str, variables: Mapping[str, Any]) -> str:
    """Render workspace template ``name`` in the sandbox mission templates render in: the
    same size and time limits, values rendered as they are there (``true``, null as empty,
    lists and mappings as JSON). An error is located in the file that raised it, an included
    or imported one too (``templates/part.j2:3:4: error: ...``); ``{% include %}`` and
    ``{% import %}`` name files relative to the workspace root, inside it."""
    import jinja2  # only a task that renders a file pays for Jinja and the sandbox

    from nexusmon.compile.limits import time_budget
    from nexusmon.compile.sandbox import make_environment

    root = workspace.resolve()
    env = make_environment(as_text, str, shell=False)
    env.loader = jinja2.FunctionLoader(lambda wanted: _load(root, wanted))
    try:
        with time_budget():
            rendered: str = env.get_template(name).render(dict(variables))
        return rendered
    except jinja2.TemplateSyntaxError as exc:
        where = (exc.filename, exc.lineno) if exc.filename else _raised_in(exc)
        raise TemplateError(_located(root, where, exc.message or str(exc), name)) from None
    except (jinja2.TemplateError, TemplateError) as exc:
        message = f"template file {exc.name!r} not found" if isinstance(exc, jinja2.TemplateNotFound) else (
            str(exc) if isinstance(exc, TemplateError) else exc.message or str(exc))
        if isinstance(exc, jinja2.exceptions.SecurityError):
            message = f"template refused by the sandbox: {message}"
        raise TemplateError(_located(root, _raised_in(exc), message, name)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(_located(root, _raised_in(exc), f"template error: {exc}", name)) from None
    except (MemoryError, RecursionError):
        raise TemplateError(f"{name}: template needs more memory or nesting than nexusmon allows") from None


def _load(root: Path, name: str) -> tuple[str, str, Callable[[], bool]] | None:
    """The source of workspace file ``name`` for Jinja (None: not found); nothing outside the root."""
    path = inside_workspace(root, root, name)
    try:
        source = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except UnicodeDecodeError:
        raise TemplateError(f"template file {name!r} is not UTF-8 text") from None
    return source, str(path), lambda: False


def _raised_in(exc: BaseException) -> tuple[str | None, int | None]:
    """The template file and line of the innermost template frame of ``exc``'s traceback
    (Jinja rewrites template frames to name the template file and line)."""
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_globals.get("__file__"), tb.tb_lineno)
        tb = tb.tb_next
    return found


def _located(root: Path, where: tuple[str | None, int | None], message: str, name: str) -> str:
    """``path:line:col: error: message`` (column of the last quoted name on that line, else 1),
    or the message with the template's name when no line is known."""
    filename, line = where
    if filename is None or line is None:
        return message if repr(name) in message else f"{name}: {message}"
    path = Path(filename)
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.as_posix()
    return str(Diagnostic(Location(relative, line, _column(path, line, message)), message))


def _column(path: Path, line: int, message: str) -> int:
    names = re.findall(r"'([A-Za-z_]\w*)'", message)
    try:
        text = path.read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, UnicodeDecodeError, IndexError):
        return 1
    found = re.search(rf"\b{re.escape(names[-1])}\b", text) if names else None
    return found.start() + 1 if found else 1
