"""Bridge between compiled plans and governance: facts in, verdicts out.

A held task that a committed file in ``approvals/`` settles carries a reason
naming the operator and the file, so `plan` predicts what `run` will do.
"""

from __future__ import annotations

from nexusmon.compile.plan import Plan, PlannedTask
from nexusmon.engine.gates import with_approval_files
from nexusmon.engine.project import Project
from nexusmon.govern.evaluate import evaluate
from nexusmon.govern.facts import GovState, TaskFacts, Verdict, params_text
from nexusmon.govern.gates import PolicySettings, effective_settings
from nexusmon.spec.model import Rank


def task_facts(plan: Plan, task: PlannedTask, project: Project) -> TaskFacts:
    worker = project.registry.get(task.worker)
    risk = Rank.parse(getattr(worker, "risk_level", "E"))
    text = str(task.params.get("run", "")) if task.worker == "shell" else params_text(task.params)
    return TaskFacts(
        mission=plan.mission.id, task=task.id, category=plan.mission.category, uses=task.uses,
        worker=task.worker, base_rank=task.base_rank, worker_risk=risk,
        worker_capabilities=tuple(getattr(worker, "capabilities", ()) or ()),
        worker_requires_approval=bool(getattr(worker, "requires_approval", False)),
        text=text, has_secrets=bool(plan.mission.secrets) or task.reads.secrets,
        matrix_size=task.matrix_size, raw_interpolation=task.reads.raw,
        declared_rank=task.spec.rank,
    )


def govern_plan(
    plan: Plan, project: Project, state: GovState, settings: PolicySettings | None = None,
    scored: bool = True,
) -> dict[str, Verdict]:
    """A verdict for every task of ``plan``, approval files in the workspace taken into account
    (``scored``: see :func:`evaluate`)."""
    policies = project.workspace.policies
    settings = settings or effective_settings(policies)
    mission = plan.mission.id
    verdicts = {
        t.id: evaluate(task_facts(plan, t, project), policies, state.for_task(mission, t.id), settings,
                       scored)
        for t in plan.tasks
    }
    return with_approval_files(plan, verdicts, project.root, settings.operators)
