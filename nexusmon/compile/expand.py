"""Walk a mission's tasks, expanding rune calls (recursively) and matrices into units."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from nexusmon.compile.context import probe_context
from nexusmon.compile.inputs import type_problem
from nexusmon.compile.templates import TemplateFailure, analyse, render, walk_strings
from nexusmon.compile.units import CallExport, Scope, Unit, matrix_combinations
from nexusmon.compile.values import render_value
from nexusmon.errors import Diagnostic, Location
from nexusmon.spec.document import Document
from nexusmon.spec.model import Mission, Rank, Rune, TaskSpec, Workspace
from nexusmon.spec.schema_check import did_you_mean

CALL_KEYS = ("uses", "with", "needs", "rank", "description")
MAX_MATRIX = 10_000  # combinations of one matrix; checked before any is built
MAX_TASKS = 100_000  # tasks of one mission when constraints.max_steps does not say
COUNT_CEILING = 10**18  # rune sizes saturate here: nested fan-out multiplies without end


class _Draft(Struct):
    """A unit under construction: needs are filled in once every sibling is known."""

    unit: Unit
    needs: list[str] = field(default_factory=list)


class _ScopeResult(Struct):
    """The drafts one scope (a mission or a rune call) expands to."""

    drafts: list[_Draft]
    roots: list[_Draft]  # drafts without needs inside this scope
    leaves: tuple[str, ...]
    scope: Scope | None = None  # the scope with every local name, for the rune's outputs


class Expander:
    """Expands one mission; collects diagnostics instead of stopping at the first."""

    def __init__(self, workspace: Workspace, mission: Mission, inputs: dict[str, Any]) -> None:
        self.workspace = workspace
        self.mission = mission
        self.inputs = inputs
        self.diagnostics: list[Diagnostic] = []
        # (unit id, needed unit id) -> where a rune call's `needs` wrote that edge, so that
        # a cycle through calls is named in the file that made it, not inside the rune.
        self.call_edges: dict[tuple[str, str], Location] = {}
        self._order = 0
        self.total = 0  # tasks the mission expands to, counted even past the limit
        self.limit = mission.constraints.max_steps or MAX_TASKS
        self.oversized: list[Diagnostic] = []  # mission rune calls past the limit on their own
        self.calls: list[CallExport] = []  # every call expanded, to check the rune's outputs
        self._sizes: dict[str, int] = {}  # rune ref -> tasks one call expands to
        self._cycles: list[str] = []

    def units(self) -> list[Unit]:
        result = self._scope(self.mission.tasks, Scope("", self.inputs, None), (), None, None)
        return [replace(d.unit, needs=tuple(dict.fromkeys(d.needs))) for d in result.drafts]

    # -- one scope: a mission, or the body of one rune call -----------------
    def _scope(
        self, specs: Sequence[TaskSpec], scope: Scope, stack: tuple[str, ...],
        uses: str | None, floor: Rank | None,
    ) -> _ScopeResult:
        names: dict[str, tuple[str, ...]] = {}
        calls: dict[str, CallExport] = {}
        scoped = Scope(scope.prefix, scope.inputs, scope.rune, names, calls)
        per_spec: dict[str, _ScopeResult] = {}
        for spec in specs:
            if spec.uses is not None:
                inner = self._call(spec, scoped, stack, floor)
                if inner is None:
                    names[spec.id] = ()  # declared, but its call failed and reports why itself
                    continue
                per_spec[spec.id] = inner[0]
                calls[spec.id] = inner[1]
                names[spec.id] = inner[0].leaves
            else:
                drafts = self._plain(spec, scoped, uses, floor)
                per_spec[spec.id] = _ScopeResult(drafts, drafts, tuple(d.unit.id for d in drafts))
                names[spec.id] = tuple(d.unit.id for d in drafts)
        needed: set[str] = set()
        roots: list[_Draft] = []
        for spec in specs:
            if spec.id not in per_spec:
                continue
            resolved = self._resolve_needs(spec, names)
            needed.update(n for n in spec.needs if n in names)
            for draft in per_spec[spec.id].roots:
                draft.needs.extend(resolved)
                if spec.uses is not None:
                    self.call_edges.update(((draft.unit.id, n), spec.loc("needs")) for n in resolved)
            if not spec.needs:
                roots.extend(per_spec[spec.id].roots)
        leaves = tuple(gid for spec in specs if spec.id in per_spec and spec.id not in needed
                       for gid in names[spec.id])
        drafts = [d for spec in specs if spec.id in per_spec for d in per_spec[spec.id].drafts]
        return _ScopeResult(drafts, roots, leaves, scoped)

    def _resolve_needs(self, spec: TaskSpec, names: dict[str, tuple[str, ...]]) -> list[str]:
        resolved: list[str] = []
        for i, need in enumerate(spec.needs):
            at = ("needs", i) if _needs_is_list(spec) else ("needs",)
            if need == spec.id and spec.uses is not None:
                # Wired onto the rune's own tasks this would be a cycle inside the rune file;
                # the mistake is here.
                self.diagnostics.append(Diagnostic(spec.loc(*at), f"dependency cycle: {need} -> {need}"))
                continue
            if need in names:
                resolved.extend(names[need])
                continue
            self.diagnostics.append(Diagnostic(
                spec.loc(*at), f"task '{spec.id}' needs unknown task '{need}'",
                did_you_mean(need, [n for n in names if n != spec.id]),
            ))
        return resolved

    # -- plain tasks and matrices -------------------------------------------
    def _plain(self, spec: TaskSpec, scope: Scope, uses: str | None, floor: Rank | None) -> list[_Draft]:
        size = math.prod(len(values) for _, values in spec.matrix or ())
        if size > MAX_MATRIX:
            self.diagnostics.append(Diagnostic(
                spec.loc("matrix"), f"matrix of task '{spec.id}' expands to {size} tasks, more than {MAX_MATRIX}"))
            return []
        self.total += size
        if self.total > self.limit:
            return []  # counted, never built: the compiler reports the total
        drafts: list[_Draft] = []
        seen: set[str] = set()
        for suffix, values in matrix_combinations(spec):
            if suffix in seen:
                self.diagnostics.append(Diagnostic(
                    spec.loc("matrix"), f"matrix of task '{spec.id}' gives two combinations the same id "
                    f"'{spec.id}{suffix}'", "make the values distinct as text and free of ','"))
                return []
            seen.add(suffix)
            self._order += 1
            unit = Unit(
                id=scope.prefix + spec.id + suffix, spec=spec, scope=scope, matrix=values,
                needs=(), uses=uses, rank_floor=floor, order=self._order,
            )
            drafts.append(_Draft(unit))
        return drafts

    # -- rune calls -----------------------------------------------------------
    def _call(
        self, spec: TaskSpec, scope: Scope, stack: tuple[str, ...], floor: Rank | None,
    ) -> tuple[_ScopeResult, CallExport] | None:
        rune = self._find_rune(spec)
        if rune is None:
            return None
        if rune.ref in stack:
            cycle = " -> ".join(stack[stack.index(rune.ref):] + (rune.ref,))
            self.diagnostics.append(Diagnostic(spec.loc("uses"), f"rune cycle: {cycle}"))
            self._cycles.append(cycle)
            return None
        if not self._fits(spec, rune, stack):
            return None
        for key in spec.doc.data_at(spec.at) or {}:
            if key not in CALL_KEYS:
                self.diagnostics.append(Diagnostic(
                    spec.key_loc(key), f"'{key}' is not supported on a rune call (task '{spec.id}')",
                    "set it on the rune's tasks instead",
                ))
        inputs = self._call_inputs(spec, rune, scope)
        if inputs is None:
            return None
        call_floor = max((r for r in (floor, spec.rank) if r is not None), default=None)
        inner_scope = Scope(scope.prefix + spec.id + ".", inputs, rune)
        cycles = len(self._cycles)
        result = self._scope(rune.tasks, inner_scope, stack + (rune.ref,), rune.ref, call_floor)
        if not stack:  # SPEC: a rune cycle names the mission's call site too
            self.diagnostics.extend(Diagnostic(
                spec.loc("uses"), f"task '{spec.id}' calls rune {rune.ref}, which enters a rune cycle: {cycle}",
            ) for cycle in dict.fromkeys(self._cycles[cycles:]))
        export = CallExport(rune, result.scope or inner_scope, result.leaves)
        self.calls.append(export)
        return result, export

    def _fits(self, spec: TaskSpec, rune: Rune, stack: tuple[str, ...]) -> bool:
        """Whether the call stays within the limit; if not, it is counted, never built."""
        size = self._size(rune, stack)
        if self.total + size <= self.limit:
            return True
        self.total += size
        if not stack and size > self.limit:
            steps = self.mission.constraints.max_steps
            self.oversized.append(Diagnostic(
                spec.loc("uses"), f"task '{spec.id}' calls rune {rune.ref}, which expands to "
                f"{_count_text(size)} tasks, more than " + (f"max_steps {steps}" if steps else str(MAX_TASKS)),
                None if steps else "set constraints.max_steps to allow more",
            ))
        return False

    def _size(self, rune: Rune, stack: tuple[str, ...]) -> int:
        """Tasks one call of ``rune`` expands to, without building them (memoised per rune)."""
        if rune.ref in self._sizes:
            return self._sizes[rune.ref]
        size, inner_stack = 0, stack + (rune.ref,)
        for spec in rune.tasks:
            if spec.uses is None:
                combinations = math.prod(len(values) for _, values in spec.matrix or ())
                size += combinations if combinations <= MAX_MATRIX else 0  # as _plain counts
                continue
            inner = self.workspace.rune(*_rune_ref(spec))
            if inner is not None and inner.ref not in inner_stack:  # a cycle is reported, not counted
                size += self._size(inner, inner_stack)
        self._sizes[rune.ref] = min(size, COUNT_CEILING)
        return self._sizes[rune.ref]

    def _find_rune(self, spec: TaskSpec) -> Rune | None:
        name, wanted = _rune_ref(spec)
        version = "" if wanted is None else str(wanted)
        rune = self.workspace.rune(name, wanted)
        if rune is not None or name in self.workspace.broken_runes:
            return rune  # a broken rune file reports its own errors
        known = sorted({r.name for r in self.workspace.runes})
        if name in known:
            versions = ", ".join(str(r.version) for r in self.workspace.runes if r.name == name)
            message = f"rune '{name}' has no version {version} (versions: {versions})"
            hint = None
        else:
            message, hint = f"unknown rune '{name}'", did_you_mean(name, known)
        self.diagnostics.append(Diagnostic(spec.loc("uses"), message, hint))
        return None

    def _call_inputs(self, spec: TaskSpec, rune: Rune, scope: Scope) -> dict[str, Any] | None:
        by_name = {i.name: i for i in rune.inputs}
        ok = True
        for key in spec.with_:
            if key not in by_name:
                ok = False
                self.diagnostics.append(Diagnostic(
                    spec.key_loc("with", key), f"rune {rune.ref} has no input '{key}'",
                    did_you_mean(key, by_name),
                ))
        values: dict[str, Any] = {}
        for name, input_spec in by_name.items():
            if name in spec.with_:
                as_text = input_spec.type == "string"
                value = self._static_value(spec, scope, ("with", name), spec.with_[name], as_text)
                if value is _FAILED:
                    ok = False
                    continue
            elif input_spec.has_default:
                value = input_spec.default
            else:
                ok = False
                self.diagnostics.append(Diagnostic(
                    spec.loc("uses"), f"rune {rune.ref} needs input '{name}' (task '{spec.id}')",
                    f"add it under with: {{{name}: ...}}",
                ))
                continue
            problem = type_problem(input_spec, value)
            if problem:
                ok = False
                self.diagnostics.append(Diagnostic(spec.loc("with", name), f"rune {rune.ref}: {problem}"))
            values[name] = value
        return values if ok else None

    def _static_value(
        self, spec: TaskSpec, scope: Scope, at: tuple[Any, ...], value: Any, as_text: bool,
    ) -> Any:
        """A call's `with` value rendered: a lone ``{{ expr }}`` keeps its type, except for an
        input of type string, which gets the text (as a number or boolean reads in a script)."""
        context = probe_context(self.mission, scope, {}, self.workspace.root)

        def one(text: str, sub: tuple[Any, ...]) -> Any:
            if analyse(text).runtime:
                raise TemplateFailure("rune inputs must be known when the mission is compiled "
                                      "(they cannot read task outputs, secrets or the run id)")
            return render(text, context) if as_text else render_value(text, context)

        try:
            return walk_strings(value, one)
        except TemplateFailure as exc:
            self.diagnostics.append(Diagnostic(spec.loc(*at), exc.message))
            return _FAILED


_FAILED = object()


def _needs_is_list(spec: TaskSpec) -> bool:
    return isinstance(spec.doc.data_at(spec.at + ("needs",)), list)


def _rune_ref(spec: TaskSpec) -> tuple[str, int | None]:
    """The rune name and version (None: the newest) a call's `uses` names."""
    name, _, version = (spec.uses or "").partition("@")
    return name, int(version) if version else None


def _count_text(size: int) -> str:
    return str(size) if size < COUNT_CEILING else f"{COUNT_CEILING} or more"


def rune_files(workspace: Workspace, mission: Mission, documents: Mapping[str, Document]) -> list[str]:
    """Paths of the rune files ``mission`` calls, directly or through runes, including files
    that failed to load (found by the name they declare)."""
    paths: dict[str, None] = {}
    names: set[str] = set()  # a file of the name that failed to load may be the version meant
    pending: list[TaskSpec] = list(mission.tasks)
    while pending:
        spec = pending.pop()
        if spec.uses is None:
            continue
        names.add(_rune_ref(spec)[0])
        rune = workspace.rune(*_rune_ref(spec))
        if rune is not None and rune.doc.path not in paths:
            paths[rune.doc.path] = None
            pending.extend(rune.tasks)
    return sorted(set(paths) | set(_declaring(documents, names & set(workspace.broken_runes))))


def _declaring(documents: Mapping[str, Document], names: Iterable[str]) -> Iterable[str]:
    wanted = set(names)
    for path, doc in documents.items():
        if path.startswith("runes/") and isinstance(doc.data, dict) and doc.data.get("rune") in wanted:
            yield path
