"""Turn schema-valid documents into the typed model, applying defaults in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nexusmon.spec.document import Document, JsonPath
from nexusmon.spec.model import (
    Constraints,
    Decision,
    InputSpec,
    Mission,
    OmenThresholds,
    Operator,
    Policy,
    PolicyTest,
    Rank,
    Rule,
    RuleThen,
    RuleWhen,
    Rune,
    Settings,
    TaskSpec,
)

DEFAULT_CATEGORY = "forge"
DEFAULT_RETRY_DELAY = 1.0


def as_tuple(value: Any) -> tuple[Any, ...]:
    """A string-or-list field as a tuple."""
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(value)
    return (value,)


def _text_map(value: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: _scalar_text(v) for k, v in (value or {}).items()}


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_input(doc: Document, at: JsonPath, name: str, spec: Mapping[str, Any]) -> InputSpec:
    """One input declaration found at ``at + (name,)``."""
    return InputSpec(
        doc=doc, at=at + (name,), name=name, type=spec.get("type", "string"),
        default=spec.get("default"), has_default="default" in spec,
        enum=tuple(spec["enum"]) if "enum" in spec else None,
        description=spec.get("description"),
    )


def parse_inputs(doc: Document, at: JsonPath, data: Mapping[str, Any] | None) -> tuple[InputSpec, ...]:
    return tuple(parse_input(doc, at, name, spec) for name, spec in (data or {}).items())


def parse_task(doc: Document, at: JsonPath, task_id: str, data: Mapping[str, Any]) -> TaskSpec:
    if_value = data.get("if")
    return TaskSpec(
        doc=doc, at=at, id=task_id,
        run=data.get("run"), worker=data.get("worker"), uses=data.get("uses"),
        with_=dict(data.get("with") or {}),
        needs=as_tuple(data.get("needs")),
        if_=_scalar_text(if_value) if if_value is not None else None,
        rank=Rank.parse(data["rank"]) if "rank" in data else None,
        timeout=data.get("timeout"),
        retries=data.get("retries", 0),
        retry_delay=float(data.get("retry_delay", DEFAULT_RETRY_DELAY)),
        env=_text_map(data.get("env")),
        sources=as_tuple(data.get("sources")),
        artifacts=as_tuple(data.get("artifacts")),
        cache=data.get("cache"),
        matrix=tuple((k, tuple(v)) for k, v in (data.get("matrix") or {}).items()),
        description=data.get("description"),
    )


def parse_tasks(doc: Document, data: Mapping[str, Any]) -> tuple[TaskSpec, ...]:
    return tuple(parse_task(doc, ("tasks", tid), tid, t) for tid, t in data.items())


def parse_mission(doc: Document) -> Mission:
    d = doc.data
    c = d.get("constraints") or {}
    return Mission(
        doc=doc, at=(), id=d["mission"], objective=d["objective"],
        category=d.get("category", DEFAULT_CATEGORY),
        rank=Rank.parse(d.get("rank", "E")),
        inputs=parse_inputs(doc, ("inputs",), d.get("inputs")),
        env=_text_map(d.get("env")),
        secrets=tuple(d.get("secrets") or ()),
        constraints=Constraints(
            max_time_seconds=c.get("max_time_seconds"), max_steps=c.get("max_steps"),
            max_cost_usd=c.get("max_cost_usd"), concurrency=c.get("concurrency"),
        ),
        tasks=parse_tasks(doc, d["tasks"]),
    )


def parse_rune(doc: Document) -> Rune:
    d = doc.data
    return Rune(
        doc=doc, at=(), name=d["rune"], version=d["version"], description=d.get("description"),
        inputs=parse_inputs(doc, ("inputs",), d.get("inputs")),
        tasks=parse_tasks(doc, d["tasks"]),
        outputs=_text_map(d.get("outputs")),
    )


def _rule(doc: Document, index: int, policy: str, data: Mapping[str, Any]) -> Rule:
    w, t = data["when"], data["then"]
    return Rule(
        doc=doc, at=("rules", index), id=data["id"], policy=policy,
        when=RuleWhen(
            mission=w.get("mission"), task=w.get("task"), uses=w.get("uses"),
            category=w.get("category"),
            worker=as_tuple(w["worker"]) if "worker" in w else None,
            rank_at_least=Rank.parse(w["rank_at_least"]) if "rank_at_least" in w else None,
            run_matches=w.get("run_matches"), has_secrets=w.get("has_secrets"),
        ),
        then=RuleThen(
            rank=Rank.parse(t["rank"]) if "rank" in t else None,
            require_capabilities=tuple(t.get("require_capabilities") or ()),
            deny=t.get("deny"), approvers=tuple(t.get("approvers") or ()),
        ),
    )


def parse_policy(doc: Document) -> Policy:
    d = doc.data
    name = d["policy"]
    gates = d.get("gates")
    omens = d.get("omens")
    return Policy(
        doc=doc, at=(), name=name,
        rules=tuple(_rule(doc, i, name, r) for i, r in enumerate(d.get("rules") or [])),
        gates={Rank.parse(k): Decision(v) for k, v in gates.items()} if gates is not None else None,
        omens=OmenThresholds(**omens) if omens is not None else None,
        scoring=d.get("scoring"), evolution=d.get("evolution"),
        operators=tuple(
            Operator(doc=doc, at=("operators", i), name=o["name"], public_key=o["public_key"],
                     may_approve=tuple(Rank.parse(r) for r in o["may_approve"]))
            for i, o in enumerate(d.get("operators") or [])
        ),
        tests=tuple(
            PolicyTest(doc=doc, at=("tests", i), name=t["name"], task=t["task"], expect=t["expect"])
            for i, t in enumerate(d.get("tests") or [])
        ),
    )


def parse_settings(doc: Document | None) -> Settings:
    if doc is None or not doc.data:
        return Settings()
    return Settings(state_dir=doc.data.get("state_dir"), concurrency=doc.data.get("concurrency"))


