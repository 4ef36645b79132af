"""`nexusmon policy test` and `nexusmon policy diff`: governance checked like code."""

from __future__ import annotations

from typing import Any

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, Globals, echo_json
from nexusmon.cli.load import project_of
from nexusmon.engine.policydiff import (
    Change,
    MissionFailure,
    Outcome,
    PolicyDiff,
    TaskChange,
    policy_diff,
    summary,
)
from nexusmon.errors import InvalidFiles
from nexusmon.govern.facts import GovState
from nexusmon.govern.policytest import (
    BUILTIN_WORKERS,
    PolicyTestReport,
    TestResult,
    WorkerTraits,
    run_policy_tests,
)
from nexusmon.govern.rules import all_rules
from nexusmon.spec.model import Rank
from nexusmon.spec.workspace import find_root
from nexusmon.util.markdown import code_span
from nexusmon.workers.registry import Registry

ARROW = " → "
ABSENT = "—"
NEUTRAL_NOTE = ("_Every mission compiled with placeholder inputs; every task evaluated with no run "
                "history (no completed missions, no omens)._")


@click.group()
def policy() -> None:
    """Run policy tests; compare governance between git revisions.

    \b
    Example:
      nexusmon policy test --strict-coverage
      nexusmon policy diff origin/main > policy-diff.md
    """


# ---------------------------------------------------------------- test


@policy.command("test", short_help="Run policy tests and report rule coverage.")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
@click.option("--strict-coverage", is_flag=True,
              help="Also fail (exit 1) when a rule is exercised by no test.")
@click.pass_context
def policy_tests(ctx: click.Context, fmt: str, strict_coverage: bool) -> int:
    """Run the `tests:` entries of every policy file, then report rule coverage.

    Each test evaluates the task it describes against all policies, with the
    workspace's workers (plugins included) and missions. A rule is covered when
    some test's task matches it; uncovered rules are listed with file:line and
    fail only with --strict-coverage. Exit status 1 when a test fails, 2 when
    the policy, rune or plugin files are invalid.

    \b
    Example:
      nexusmon policy test --format json
    """
    project = project_of(ctx)
    problems = project.shared_diagnostics()
    if problems:
        raise InvalidFiles(problems)
    report = run_policy_tests(project.workspace.policies, GovState(),
                              worker_traits(project.registry), project.workspace.missions)
    rules = len(all_rules(project.workspace.policies))
    if fmt == "json":
        echo_json(_report_document(report, rules))
    else:
        _print_report(report, rules)
    return 1 if not report.ok or (strict_coverage and report.uncovered_rules) else 0


def worker_traits(registry: Registry) -> dict[str, WorkerTraits]:
    """Built-in traits overlaid with every registered worker's (plugins included)."""
    traits = dict(BUILTIN_WORKERS)
    for name in registry.names():
        worker = registry.get(name)
        if worker is not None:
            traits[name] = WorkerTraits(Rank.parse(worker.risk_level), tuple(worker.capabilities),
                                        bool(worker.requires_approval))
    return traits


def _reasons(result: TestResult) -> list[str]:
    # The verdict's reasons, when the report records them (the message always has expected vs got).
    return [str(r) for r in getattr(result, "reasons", ())]


def _print_report(report: PolicyTestReport, rules: int) -> None:
    for result in report.results:
        where = f"{result.location.path}:{result.location.line}"
        click.echo(f"{'PASS' if result.passed else 'FAIL'} {where} {result.name}")
        if not result.passed:
            click.echo(f"     {result.message}")
            reasons = _reasons(result)
            if reasons:
                click.echo(f"     reasons: {'; '.join(reasons)}")
    if report.uncovered_rules:
        click.echo("uncovered rules (no test exercises them):")
        for rule, loc in report.uncovered_rules:
            click.echo(f"  {loc.path}:{loc.line} {rule}")
    click.echo(_test_totals(report, rules))


def _test_totals(report: PolicyTestReport, rules: int) -> str:
    total = len(report.results)
    failed = sum(1 for r in report.results if not r.passed)
    if total == 0:
        head = "no policy tests (add `tests:` to a policy file)"
    else:
        head = f"{total} test{'s' if total != 1 else ''}: {total - failed} passed, {failed} failed"
    covered = rules - len(report.uncovered_rules)
    return f"{head}; {covered} of {rules} rule{'s' if rules != 1 else ''} covered"


def _report_document(report: PolicyTestReport, rules: int) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "rules": rules,
        "passed": sum(1 for r in report.results if r.passed),
        "failed": sum(1 for r in report.results if not r.passed),
        "tests": [
            {"policy": r.policy, "name": r.name, "passed": r.passed, "message": r.message,
             "path": r.location.path, "line": r.location.line, "reasons": _reasons(r)}
            for r in report.results
        ],
        "uncovered_rules": [
            {"rule": rule, "path": loc.path, "line": loc.line} for rule, loc in report.uncovered_rules
        ],
    }


# ---------------------------------------------------------------- diff


@policy.command("diff", short_help="Tasks whose governance differs between git revisions.")
@click.argument("base")
@click.argument("head", required=False)
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@click.option("--mission", metavar="MISSION", help="Only this mission (an id).")
@click.pass_context
def policy_diff_command(
    ctx: click.Context, base: str, head: str | None, fmt: str, mission: str | None,
) -> int:
    """Show every task whose rank, decision or reasons differ between git
    revisions BASE and HEAD (default: the working tree), plus added and
    removed tasks, as a markdown table ready to paste as a PR comment.

    Missions, runes, policies and plugins are read at each revision; every
    mission is compiled with placeholder inputs and evaluated with no run
    history, so the diff compares files, never the ledger. Exit status 0
    whether or not something differs; 2 for an unknown revision or invalid
    files at either revision.

    \b
    Example:
      nexusmon policy diff origin/main HEAD --format json
    """
    globals_: Globals = ctx.find_root().obj
    diff = policy_diff(find_root(globals_.start), base, head, mission)
    if fmt == "json":
        echo_json(diff.as_json())
    else:
        click.echo("\n".join(markdown(diff)))
    return 0


def markdown(diff: PolicyDiff) -> list[str]:
    """The diff as a markdown report: heading, summary, table, note."""
    revisions = code_span(f"{diff.base.label}..{diff.head.label}", in_table=False)
    lines = [f"### nexusmon policy diff {revisions}{_commits(diff)}",
             "", summary(diff)]
    if diff.changes:
        lines += ["", "| mission | task | rank | decision | reasons |", "|---|---|---|---|---|"]
        lines += [_row(change, diff) for change in diff.changes]
    return lines + ["", NEUTRAL_NOTE]


def _commits(diff: PolicyDiff) -> str:
    base, head = diff.base.commit, diff.head.commit
    if base is None:
        return ""
    return f" ({base[:10]}..{head[:10]})" if head else f" (base {base[:10]})"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _row(change: Change, diff: PolicyDiff) -> str:
    """One table row; every cell already escaped."""
    if isinstance(change, MissionFailure):
        cells = [_cell(change.mission), "*(whole mission)*", "", "", _failure_text(change, diff)]
    else:
        cells = [_cell(change.mission), code_span(change.task), _transition(change, "rank"),
                 _transition(change, "decision"), _reason_text(change)]
    return "| " + " | ".join(cells) + " |"


def _value(outcome: Outcome | None, field: str) -> str:
    if outcome is None:
        return ABSENT
    return outcome.rank.name if field == "rank" else outcome.decision.value


def _transition(change: TaskChange, field: str) -> str:
    before, after = _value(change.before, field), _value(change.after, field)
    return after if before == after else f"{before}{ARROW}{after}"


def _reason_text(change: TaskChange) -> str:
    if change.before is None or change.after is None:
        only = change.after or change.before
        mark = "+ " if change.after else "− "
        return "<br>".join(mark + _cell(str(r)) for r in (only.reasons if only else ()))
    old, new = set(change.before.messages), set(change.after.messages)
    lines = [f"+ {_cell(str(r))}" for r in change.after.reasons if r.message not in old]
    lines += [f"− {_cell(str(r))}" for r in change.before.reasons if r.message not in new]
    return "<br>".join(lines or [_cell(str(r)) for r in change.after.reasons])


def _failure_text(failure: MissionFailure, diff: PolicyDiff) -> str:
    parts = []
    for side, compiled in ((diff.base, failure.before), (diff.head, failure.after)):
        if compiled is not None and compiled.error:
            parts.append(_cell(f"does not compile at {side.label}: {compiled.error}"))
    return "; ".join(parts)


