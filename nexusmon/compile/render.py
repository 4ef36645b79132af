"""Render a unit's templated fields (`run`, `with`, `env`, `if`) against a context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import Struct

from nexusmon.compile.shellcontext import REFUSED, refused_spots
from nexusmon.compile.templates import TemplateFailure, analyse, evaluate, render, walk_strings
from nexusmon.compile.values import render_value
from nexusmon.errors import Diagnostic
from nexusmon.spec.model import TaskSpec

NUL = "\x00"


class Fields(Struct, frozen=True):
    """Rendered task fields; ``params`` is the worker's `with` (`{"run": ...}` for shell)."""

    params: Mapping[str, Any]
    env: Mapping[str, str]


class Reads(Struct, frozen=True):
    """What a task's templates depend on."""

    tasks: frozenset[str]
    secrets: bool
    raw: bool
    runtime: bool


class FieldError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


def reads_of(spec: TaskSpec) -> tuple[Reads, list[Diagnostic]]:
    """Analyse every template of a task; syntax errors become diagnostics."""
    tasks: set[str] = set()
    secrets = raw = runtime = False
    problems: list[Diagnostic] = []
    for at, text, expression in templates_of(spec):
        try:
            a = analyse(text, expression)
        except TemplateFailure as exc:
            problems.append(Diagnostic(spec.line_loc(exc.line, *at), exc.message))
            continue
        if _is_script(spec, at):
            problems += [_refused_spot(spec, at, *spot) for spot in refused_spots(text)]
        tasks |= a.tasks
        secrets = secrets or a.secrets
        raw = raw or a.raw
        runtime = runtime or a.runtime
    return Reads(frozenset(tasks), secrets, raw, runtime), problems


def _is_script(spec: TaskSpec, at: tuple[Any, ...]) -> bool:
    return at == ("run",) or (at[0] == "with" and at[1:] == _SCRIPT.get(spec.worker_name))


def _refused_spot(spec: TaskSpec, at: tuple[Any, ...], expression: str, line: int, place: str) -> Diagnostic:
    """A value interpolated where no quoting or escaping keeps it one literal piece."""
    hint = "move it out of the comment" if place == "comment" else "use $( ) instead of backticks"
    return Diagnostic(
        spec.line_loc(line, *at),
        f"task '{spec.id}': {expression} sits {REFUSED[place]} (script line {line}), where no "
        "quoting keeps a value literal: a value such as $(touch pwned) could run",
        f"{hint}; `| raw` opts out",
    )


def templates_of(spec: TaskSpec) -> list[tuple[tuple[Any, ...], str, bool]]:
    found: list[tuple[tuple[Any, ...], str, bool]] = []
    if spec.run is not None:
        found.append((("run",), spec.run, False))
    walk_strings(dict(spec.with_), lambda text, at: found.append((("with",) + at, text, False)))
    for key, text in spec.env.items():
        found.append((("env", key), text, False))
    if spec.if_ is not None:
        found.append((("if",), spec.if_, True))
    return found


#: The `with` key that holds a worker's script: text, like `run`, whatever its template.
_SCRIPT = {"shell": ("run",)}


def render_fields(spec: TaskSpec, context: Mapping[str, Any]) -> Fields:
    """Render `run`/`with`/`env`; all failures are collected, located, and raised together.

    A `with` string that is one lone ``{{ expr }}`` keeps the expression's type
    (see :mod:`nexusmon.compile.values`); scripts and `env` are always text."""
    problems: list[Diagnostic] = []

    def one(text: str, at: tuple[Any, ...], shell: bool = False) -> Any:
        try:
            if at[0] == "with":
                if at[1:] != _SCRIPT.get(spec.worker_name):
                    return render_value(text, context)
                shell = True  # `worker: shell` + `with.run` is `run`: values are shell-quoted
            return render(text, context, shell=shell)
        except TemplateFailure as exc:
            problems.append(Diagnostic(spec.line_loc(exc.line, *at), exc.message))
            return text

    params: dict[str, Any] = walk_strings(dict(spec.with_), lambda text, at: one(text, ("with",) + at))
    if spec.run is not None:  # `run: S` is `worker: shell` with `with.run: S`
        params["run"] = one(spec.run, ("run",), shell=True)
    env = {key: one(text, ("env", key)) for key, text in spec.env.items()}
    if problems:
        raise FieldError(problems)
    nuls = _nul_problems(spec, params, env)
    if nuls:
        raise FieldError(nuls)
    return Fields(params, env)


def _nul_problems(spec: TaskSpec, params: Mapping[str, Any], env: Mapping[str, str]) -> list[Diagnostic]:
    """A NUL byte in the script, the environment or the working directory, which no process can
    take (the OS refuses it with a bare `embedded null byte`): the field is named instead."""
    found = []
    cwd, written = params.get("cwd"), spec.with_.get("cwd")
    if isinstance(cwd, str) and NUL in cwd and not (isinstance(written, str) and NUL in written):
        # (a NUL written in the mission is reported with the other path checks: compile.paths)
        found.append(_nul_problem(spec, ("with", "cwd"), "with.cwd", written))
    for key, value in env.items():
        if NUL in value:
            found.append(_nul_problem(spec, ("env", key), f"env.{key}", spec.env[key]))
    script = params.get("run")
    if isinstance(script, str) and NUL in script and (spec.run is not None or spec.worker_name == "shell"):
        at = ("run",) if spec.run is not None else ("with", "run")
        found.append(_nul_problem(spec, at, "its script", spec.run or spec.with_.get("run")))
    return found


def _nul_problem(spec: TaskSpec, at: tuple[Any, ...], what: str, source: Any) -> Diagnostic:
    literal = isinstance(source, str) and NUL in source
    origin = "" if literal else " (from a template value)"
    return Diagnostic(spec.loc(*at), f"task '{spec.id}': {what} contains a NUL byte{origin}")


def render_env(env: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    return {k: render(v, context) for k, v in env.items()}


def condition(spec: TaskSpec, context: Mapping[str, Any]) -> bool | None:
    """The task's `if` as a boolean (None when it has none)."""
    if spec.if_ is None:
        return None
    if spec.if_.strip().lower() in ("true", "false"):
        return spec.if_.strip().lower() == "true"
    try:
        return bool(evaluate(spec.if_, context))
    except TemplateFailure as exc:
        raise FieldError([Diagnostic(spec.loc("if"), exc.message)]) from None
