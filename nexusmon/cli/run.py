"""`nexusmon run` and `nexusmon resume`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from nexusmon.cli.common import FORMAT_TEXT_JSON, echo_json, refusal, stdout_reserved
from nexusmon.cli.load import inputs_options, plan_for, project_of, replan, state_dir_of
from nexusmon.cli.progress import Printer
from nexusmon.compile.plan import Plan
from nexusmon.engine.cacheview import cache_states
from nexusmon.engine.ci import write_reports
from nexusmon.engine.dryrun import dry_run_document
from nexusmon.engine.governing import govern_plan
from nexusmon.engine.history import gov_state
from nexusmon.engine.planview import plan_rows
from nexusmon.engine.project import Project
from nexusmon.engine.report import find_run, run_document
from nexusmon.engine.runner import (
    RunRequest,
    RunResult,
    child_run_to_continue,
    resume_run,
    start_run,
)
from nexusmon.engine.runsecrets import reveal_inputs
from nexusmon.errors import NexusmonError
from nexusmon.store.ledger import Ledger
from nexusmon.workers.mission import PARENT_RUN_ENV, PARENT_TASK_ENV


def run_options(fn: Any) -> Any:
    for decorator in reversed([
        click.option("--concurrency", type=click.IntRange(min=1), help="Maximum tasks at once (default: CPU count)."),
        click.option("--keep-going", is_flag=True, help="After a failure, still run every task that does not depend on it."),
        click.option("--no-cache", is_flag=True, help="Run every task, even when a cached result applies."),
        click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report (one testcase per task)."),
        click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True),
    ]):
        fn = decorator(fn)
    return fn


@click.command()
@click.argument("mission")
@inputs_options
@run_options
@click.option("--dry-run", is_flag=True, help="Compile and govern, execute nothing.")
@click.pass_context
def run(
    ctx: click.Context, mission: str, assignments: Sequence[str], inputs_files: Sequence[str],
    concurrency: int | None, keep_going: bool, no_cache: bool, junit: str | None, fmt: str,
    dry_run: bool,
) -> int:
    """Execute MISSION (an id or a path).

    Exit status: 0 succeeded, 1 a task failed, 2 invalid files or usage,
    3 held for approval, 4 blocked by policy.

    \b
    Example:
      nexusmon run release-notes -i tag=v2.0.0 --junit report.xml
    """
    with refusal_as_json(fmt, mission):
        project = project_of(ctx)
        plan = plan_for(ctx, project, mission, assignments, inputs_files)
        state_dir = state_dir_of(ctx, project)
    if dry_run:
        return _dry_run(plan, project, state_dir, fmt, use_cache=not no_cache)
    printer = Printer(fmt)
    request = _request(concurrency, keep_going, no_cache, printer)
    earlier = child_run_to_continue(state_dir, plan, request)
    with refusal_as_json(fmt, plan.mission.id, None, state_dir), stdout_reserved(fmt == "json"):
        if earlier is not None:
            result = resume_run(project, plan, state_dir, earlier, request)
        else:
            result = start_run(project, plan, state_dir, request)
    return _report(state_dir, result, fmt, junit, printer)


@click.command()
@click.argument("run_ref", metavar="RUN")
@run_options
@click.pass_context
def resume(
    ctx: click.Context, run_ref: str, concurrency: int | None, keep_going: bool, no_cache: bool,
    junit: str | None, fmt: str,
) -> int:
    """Continue RUN (an id, a unique prefix, or `last`): re-run what did not succeed,
    apply approvals recorded since.

    One process drives a run at a time: resuming a run that another live
    nexusmon process is running fails at once (exit status 2) naming its pid.

    \b
    Example:
      nexusmon approve last ship && nexusmon resume last
    """
    with refusal_as_json(fmt, None):
        project = project_of(ctx)
        state_dir = state_dir_of(ctx, project)
        with Ledger(state_dir) as ledger:
            previous = find_run(ledger, run_ref)
            inputs = reveal_inputs(ledger, previous, os.environ)
    with refusal_as_json(fmt, previous.mission, previous.run_id, state_dir):
        plan = replan(project, previous, inputs)
    if previous.mission_digest and previous.mission_digest != plan.mission.digest:
        click.echo(f"warning: {plan.mission.path} changed since run {previous.run_id} started; "
                   "tasks that succeeded are kept as they ran, the others run as the file says now",
                   err=True)
    printer = Printer(fmt)
    with refusal_as_json(fmt, plan.mission.id, previous.run_id, state_dir), stdout_reserved(fmt == "json"):
        result = resume_run(project, plan, state_dir, previous,
                            _request(concurrency, keep_going, no_cache, printer))
    return _report(state_dir, result, fmt, junit, printer)


@contextlib.contextmanager
def refusal_as_json(fmt: str, mission: str | None, run_id: str | None = None,
                    state_dir: Path | None = None) -> Iterator[None]:
    """With ``--format json``, a run that an error stopped still prints its document.

    SPEC: `run`/`resume` print their JSON document whatever the exit code. For a run
    the ledger holds (a resume refused, a run an error ended) it is the run's document as
    `show` prints it; when nothing was recorded, ``tasks`` is empty and ``status`` is
    ``"refused"``. Either way ``exit_code``, ``error`` and ``errors`` (the located
    problems: ``path``, ``line``, ``col``, ``message``, ``hint``) say why; the messages
    also go to stderr as usual and the exit code is unchanged.
    """
    try:
        yield
    except NexusmonError as exc:
        if fmt == "json":
            echo_json(refusal_document(exc, mission, exc.run_id or run_id, state_dir))
        raise


def refusal_document(exc: NexusmonError, mission: str | None, run_id: str | None,
                     state_dir: Path | None) -> dict[str, Any]:
    why = refusal(exc)
    if run_id is not None and state_dir is not None:
        with contextlib.suppress(NexusmonError, OSError), Ledger(state_dir) as ledger:
            return {**run_document(ledger, find_run(ledger, run_id)), **why}
    return {"run_id": run_id, "mission": mission, "status": "refused", **why, "tasks": []}


def _dry_run(plan: Plan, project: Project, state_dir: Path, fmt: str, use_cache: bool) -> int:
    verdicts = govern_plan(plan, project, gov_state(state_dir, plan.mission.id))
    rows = plan_rows(plan, verdicts, cache_states(plan, state_dir) if use_cache else None)
    doc = dry_run_document(plan, rows, use_cache)
    if fmt == "json":
        echo_json(doc)
        return int(doc["exit_code"])
    statuses = {t["id"]: t["status"] for t in doc["tasks"]}
    click.echo(f"dry run of {plan.mission.id}: {len(rows)} tasks, nothing executed")
    for row in rows:
        click.echo(f"  {row.id}  {row.worker}  {row.rank}  {row.decision}  {statuses[row.id]}")
        for note in row.notes:
            click.echo(f"      - {note}")
    click.echo(_DRY_RUN_ENDINGS[doc["status"]])
    return int(doc["exit_code"])


_DRY_RUN_ENDINGS = {
    "planned": "nothing holds the run",
    "awaiting_approval": "the run would be held for approval (exit 3)",
    "blocked": "the run would be blocked by policy (exit 4)",
    "failed": "a rejected task would fail the run (exit 1)",
}


def _request(concurrency: int | None, keep_going: bool, no_cache: bool, printer: Printer) -> RunRequest:
    return RunRequest(concurrency=concurrency, keep_going=keep_going, use_cache=not no_cache,
                      progress=printer.progress, warn=printer.warning, parent_run_id=os.environ.get(PARENT_RUN_ENV),
                      parent_task_id=os.environ.get(PARENT_TASK_ENV))


def _report(state_dir: Path, result: RunResult, fmt: str, junit: str | None, printer: Printer) -> int:
    with Ledger(state_dir) as ledger:
        doc = run_document(ledger, find_run(ledger, result.run_id))
        logs = {t["id"]: ledger.logs(result.run_id, t["id"]) for t in doc["tasks"]
                if junit and t["status"] == "failed"}
    for warning in write_reports(doc, junit, os.environ, logs):
        click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        echo_json(doc)
    else:
        printer.summary(doc)
    sys.stdout.flush()
    return result.exit_code
