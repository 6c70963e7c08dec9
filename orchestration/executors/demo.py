"""Deterministic built-in agents, labelled as demo, that really edit the demo repository.

They make the whole cycle runnable on a fresh machine with no key and no network: Orion
plans the next catalogue feature the repository does not have yet, Tara writes its tests,
Devon implements it — with a scripted bug on the first attempt at a feature's first
subtask, so the retry loop turns red into green in front of the viewer.
"""

from __future__ import annotations

from orchestration.demo.catalogue import CATALOGUE, STEPS_BY_KEY, DemoFeature
from orchestration.executors.base import ExecutionResult, RunContext
from orchestration.models import AgentProfile, RunStep

LABEL = "[demo agent] "


class DemoExecutor:
    kind = "demo"

    def preflight(self, profile: AgentProfile, secrets: dict[str, str]) -> list[str]:
        return []

    def execute(self, context: RunContext) -> ExecutionResult:
        run = context.run
        if run.step == RunStep.PLAN:
            return self._plan(context)
        step = STEPS_BY_KEY.get(run.subtask.key) if run.subtask else None
        if step is None:
            return ExecutionResult.failed(
                f"{LABEL}the demo agents only know the demo catalogue "
                f"({', '.join(STEPS_BY_KEY)}); this subtask is {run.subtask.key!r}"
            )
        if run.step == RunStep.TESTS:
            target = context.worktree / step.test_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.test_code)
            return ExecutionResult(
                ok=True, output=f"{LABEL}Tara wrote {step.test_path}", tokens_in=0, tokens_out=0
            )
        scripted_bug = bool(step.buggy_code) and run.attempt == 1
        target = context.worktree / step.module_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(step.buggy_code if scripted_bug else step.code)
        note = " (first attempt, with the scripted bug)" if scripted_bug else ""
        return ExecutionResult(ok=True, output=f"{LABEL}Devon wrote {step.module_path}{note}")

    def _plan(self, context: RunContext) -> ExecutionResult:
        feature = next(
            (f for f in CATALOGUE if not (context.worktree / f.steps[0].module_path).exists()),
            None,
        )
        if feature is None:
            return ExecutionResult.failed(
                f"{LABEL}the demo repository already has every demo feature "
                f"({', '.join(f.name for f in CATALOGUE)}); create a fresh demo project"
            )
        return ExecutionResult(
            ok=True,
            output=f"{LABEL}Orion planned the demo feature {feature.name!r}",
            result={"manifest": manifest_for(feature, context.run.feature.title)},
        )


def manifest_for(feature: DemoFeature, request: str) -> dict:
    frd = (
        f"# {request}\n\n*Planned by the demo Orion: it always builds the next feature of "
        f"its catalogue, whatever was asked.*\n\n## Scope\n{feature.summary}\n\n"
        "## Acceptance criteria\n"
        + "\n".join(f"- {step.title}: {step.developer}" for step in feature.steps)
    )
    return {
        "frd": frd,
        "subtasks": [
            {
                "key": step.key,
                "title": step.title,
                "description": step.developer,
                "requirements": {"developer": step.developer, "tester": step.tester},
                "depends_on": list(step.depends_on),
                "risk": "low",
                "estimate_hours": 0.5,
            }
            for step in feature.steps
        ],
    }
