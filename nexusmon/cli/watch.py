"""`nexusmon watch`: run a mission, then re-run it whenever its files change."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from nexusmon.cli.common import Globals
from nexusmon.cli.load import inputs_options, plan_for, project_of, state_dir_of
from nexusmon.cli.progress import Printer
from nexusmon.compile.plan import Plan
from nexusmon.engine.project import Project
from nexusmon.engine.report import find_run, run_document
from nexusmon.engine.runner import RunRequest, start_run
from nexusmon.engine.watch import (
    ChangeFeed,
    StopSignals,
    describe,
    is_noise,
    relative,
    targets_for,
    triggered,
)
from nexusmon.errors import InvalidFiles, NexusmonError, UsageError
from nexusmon.spec.model import RunStatus
from nexusmon.spec.workspace import find_root
from nexusmon.store.ledger import Ledger


class Session:
    """One watched mission: reloads the workspace and runs it again on demand."""

    def __init__(
        self, ctx: click.Context, root: Path, mission: str, assignments: Sequence[str],
        inputs_files: Sequence[str], concurrency: int | None, stop: StopSignals,
    ) -> None:
        self.ctx, self.root, self.mission = ctx, root, mission
        self.assignments, self.inputs_files, self.concurrency = assignments, inputs_files, concurrency
        self.stop = stop
        self.mission_file: str | None = None  # known once the mission loaded
        inside = (relative(root, Path(path).resolve()) for path in inputs_files)
        self.extra = tuple(path for path in inside if path)
        self.targets = targets_for(root, state_dir_of(ctx, project_of(ctx, root)), None, extra=self.extra)

    def keep(self, path: str) -> bool:
        return not is_noise(self.targets, path)

    def cycle(self, first: bool = False) -> None:
        """Reload, recompile and run; file and usage errors are reported and watching goes on."""
        try:
            project, plan, state_dir = self._load()
        except InvalidFiles as exc:
            for diagnostic in exc.diagnostics:
                click.echo(str(diagnostic), err=True)
            _say(f"{self.mission}: invalid files, nothing ran; watching for a fix")
            return
        except UsageError as exc:
            if first:
                raise
            click.echo(f"error: {exc}", err=True)
            _say(f"{self.mission}: nothing ran; watching for a fix")
            return
        if not self.stop.event.is_set():
            self._run(project, plan, state_dir)

    def _load(self) -> tuple[Project, Plan, Path]:
        project = project_of(self.ctx, self.root)
        state_dir = state_dir_of(self.ctx, project)
        self.targets = targets_for(self.root, state_dir, None, self.targets, self.extra)
        plan = self._plan(project)
        self.mission_file = plan.mission.path
        self.targets = targets_for(self.root, state_dir, plan, self.targets, self.extra)
        return project, plan, state_dir

    def _plan(self, project: Project) -> Plan:
        try:
            return plan_for(self.ctx, project, self.mission, self.assignments, self.inputs_files)
        except UsageError:
            # A mission file that does not parse defines no mission: show why.
            files = {self.mission_file} if self.mission_file else {
                f"missions/{self.mission}.yaml", f"missions/{self.mission}.yml"}
            broken = [d for d in project.loaded.diagnostics if d.location.path in files]
            if broken:
                raise InvalidFiles(broken) from None
            raise

    def _run(self, project: Project, plan: Plan, state_dir: Path) -> None:
        printer = Printer("text")
        request = RunRequest(concurrency=self.concurrency, progress=printer.progress)
        try:
            result = start_run(project, plan, state_dir, request)
            with Ledger(state_dir) as ledger:
                printer.summary(run_document(ledger, find_run(ledger, result.run_id)))
        except NexusmonError as exc:
            click.echo(f"error: {exc}", err=True)
            return
        finally:
            self.stop.arm()  # the runner restored the default handlers
            sys.stdout.flush()
        if result.status is RunStatus.INTERRUPTED:
            self.stop.event.set()


def _say(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()


@click.command()
@click.argument("mission")
@inputs_options
@click.option("--concurrency", type=click.IntRange(min=1), help="Maximum tasks at once (default: CPU count).")
@click.option("--debounce", type=click.IntRange(min=1), default=50, show_default=True, metavar="MS",
              help="Re-run once no file has changed for MS milliseconds.")
@click.pass_context
def watch(
    ctx: click.Context, mission: str, assignments: Sequence[str], inputs_files: Sequence[str],
    concurrency: int | None, debounce: int,
) -> int:
    """Run MISSION, then run it again whenever a mission, rune, policy, plugin,
    nexusmon.yaml or a file matched by a task's `sources` changes.

    Tasks whose sources did not change stay cached, so only what an edit
    affects runs again. The state directory, `.git/` and declared artifacts
    never trigger a run. Invalid edits are reported and watching goes on;
    Ctrl-C stops (exit status 0).

    \b
    Example:
      nexusmon watch docs-build -i source=manual
    """
    globals_: Globals = ctx.find_root().obj
    root = find_root(globals_.start).resolve()
    stop = StopSignals()
    stop.arm()
    try:
        session = Session(ctx, root, mission, assignments, inputs_files, concurrency, stop)
        with ChangeFeed(root, session.keep, debounce) as feed:
            _say(f"watching {mission} in {root} (Ctrl-C to stop)")
            session.cycle(first=True)
            _loop(session, feed, stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.restore()
    _say(f"stopped watching {mission}")
    return 0


def _loop(session: Session, feed: ChangeFeed, stop: StopSignals) -> None:
    while not stop.event.is_set():
        batch = feed.next_batch(stop.event)
        if batch is None:
            return
        changed: list[str] = triggered(session.targets, batch)
        if changed:
            _say(f"change in {describe(changed)}: re-running {session.mission}")
            session.cycle()
