"""From "Build feature X" to a planned feature: Orion's run, its manifest, the subtasks."""

from __future__ import annotations

from django.db import transaction

from orchestration.errors import InvalidInput
from orchestration.lock_objects import lock_feature
from orchestration.manifest import Manifest, parse_manifest
from orchestration.models import (
    AgentRun,
    EventKind,
    FeatureRequest,
    FeatureStatus,
    Project,
    RunStep,
    Subtask,
)
from orchestration.services.briefings import briefing_for
from orchestration.services.dependencies import apply_dependency_add
from orchestration.services.events import event_record
from orchestration.services.transitions import apply_feature_transition, apply_subtask_transition
from orchestration.services.work import apply_run_enqueue, feature_create

ACTOR = "orchestrator"


def feature_request(
    *, project: Project, title: str, description: str = "", actor: str, created_by=None
) -> FeatureRequest:
    """A human asks for a feature: it is recorded and planning starts at once."""
    feature = feature_create(
        project=project, title=title, description=description, actor=actor, created_by=created_by
    )
    return feature_plan(feature=feature, actor=actor)


@transaction.atomic(durable=True)
def feature_plan(*, feature: FeatureRequest, actor: str) -> FeatureRequest:
    return apply_feature_transition(lock_feature(feature.pk), "plan", actor=actor)


def queue_plan_run(feature_id: int, *, cause_event_id: int) -> AgentRun | None:
    with transaction.atomic():
        feature = lock_feature(feature_id)
        if feature.status != FeatureStatus.PLANNING:
            return None
        return apply_run_enqueue(
            project=feature.project,
            feature=feature,
            role="pm",
            step=RunStep.PLAN,
            actor=ACTOR,
            cause_event_id=cause_event_id,
            briefing=briefing_for(role="pm", step="plan", feature=feature, subtask=None),
        )


def validate_plan_output(result: dict) -> Manifest:
    """Orion's run result must carry a valid manifest; raises InvalidInput naming each problem."""
    if "manifest" not in result:
        raise InvalidInput("the plan run's result has no 'manifest'")
    return parse_manifest(result["manifest"])


def plan_apply(run_id: int) -> list[Subtask]:
    """Create the planned subtasks and start those with no dependencies (idempotent)."""
    with transaction.atomic():
        run = AgentRun.objects.get(pk=run_id)
        feature = lock_feature(run.feature_id)
        if feature.status != FeatureStatus.PLANNING:
            return []
        manifest = validate_plan_output(run.result)
        FeatureRequest.objects.filter(pk=feature.pk).update(frd=manifest.frd)
        feature.frd = manifest.frd
        created = _create_subtasks(feature, manifest)
        apply_feature_transition(feature, "finish_planning", actor=ACTOR)
        apply_feature_transition(feature, "begin", actor=ACTOR)
        event_record(
            workspace_id=feature.workspace_id,
            kind=EventKind.PLAN_APPLIED,
            message=f"Orion planned {feature.title}: {len(created)} subtasks",
            actor=ACTOR,
            feature=feature,
            run=run,
            data={"subtasks": [s.key for s in created]},
        )
        for subtask in created:
            if not subtask.dependency_links.exists():
                apply_subtask_transition(subtask, "start", actor=ACTOR)
    return created


def _create_subtasks(feature: FeatureRequest, manifest: Manifest) -> list[Subtask]:
    from orchestration.services.work import apply_subtask_create

    by_key: dict[str, Subtask] = {}
    for planned in manifest.subtasks:
        by_key[planned.key] = apply_subtask_create(
            project=feature.project,
            key=planned.key,
            title=planned.title,
            actor=ACTOR,
            feature=feature,
            description=planned.description,
            requirements_developer=planned.developer,
            requirements_tester=planned.tester,
            risk=planned.risk,
            estimate_hours=planned.estimate_hours,
            owner_role=planned.owner,
        )
    for planned in manifest.subtasks:
        for dep in planned.depends_on:
            apply_dependency_add(by_key[planned.key], by_key[dep], actor=ACTOR)
    return list(by_key.values())
