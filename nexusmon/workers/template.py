"""The ``template`` worker: writes rendered text to a file in the workspace.

Parameters (``with``):

- ``text``: the content, already rendered with the mission context; or
- ``file``: a Jinja2 template in the workspace, rendered here in a sandbox
  with strict undefined names; its context is the ``vars`` mapping (pass what
  it needs: ``vars: {tag: "{{ inputs.tag }}"}``).
- ``path``: where to write, relative to the task's working directory; it must
  stay inside the workspace. Parent folders are created; the file is replaced
  atomically.

Outputs: ``path`` (relative to the workspace root) and ``bytes`` written.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nexusmon.errors import NexusmonError
from nexusmon.util.masking import Masker
from nexusmon.util.wsglob import WorkspaceFiles
from nexusmon.workers.base import Result, Task

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "file": {"type": "string"},
        "path": {"type": "string", "minLength": 1},
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
            target = inside_workspace(task.workspace, task.cwd, str(task.params.get("path", "")))
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
        return str(task.params.get("text", ""))
    source = inside_workspace(task.workspace, task.cwd, str(task.params["file"]))
    name = source.relative_to(task.workspace.resolve()).as_posix()
    variables = task.params.get("vars") or {}
    if not isinstance(variables, Mapping):
        raise TemplateError("'vars' must be a mapping")
    return render_file(task.workspace, name, variables)


def render_file(workspace: Path, name: str, variables: Mapping[str, Any]) -> str:
    """Render workspace template ``name`` in a sandbox; errors name the file and line."""
    import jinja2  # only a task that renders a file pays for the import
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(workspace)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    try:
        return env.get_template(name).render(dict(variables))
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template file {name!r} not found") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{name}: {exc.message or exc}") from None
