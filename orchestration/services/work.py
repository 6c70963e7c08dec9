"""Creating the work itself: projects, feature requests, subtasks and runs."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Workspace
from audit.services import record_audit
from orchestration.errors import Conflict, InvalidInput
from orchestration.models import (
    AgentProfile,
    AgentRun,
    EventKind,
    FeatureRequest,
    Project,
    Subtask,
)
from orchestration.services.events import event_record


def unique_slug(text: str, taken: set[str], *, max_length: int = 60) -> str:
    base = slugify(text)[: max_length - 6].strip("-") or "item"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic(durable=True)
def project_create(*, workspace: Workspace, name: str, actor: str, **fields: Any) -> Project:
    if not name.strip():
        raise InvalidInput("name must not be empty", field="name")
    taken = set(Project.objects.filter(workspace=workspace).values_list("slug", flat=True))
    slug = fields.pop("slug", None) or unique_slug(name, taken)
    if slug in taken:
        raise Conflict(f"a project with slug {slug!r} exists in this workspace", field="slug")
    project = Project.objects.create(workspace=workspace, name=name.strip(), slug=slug, **fields)
    event_record(
        workspace_id=workspace.pk,
        kind=EventKind.PROJECT_CREATED,
        message=f"project {project.name} created",
        actor=actor,
        project=project,
    )
    return project


@transaction.atomic(durable=True)
def project_update(*, project: Project, changes: dict[str, Any], actor: str) -> Project:
    """Change a project's settings; a policy change goes to the audit log with the change."""
    before = Project.objects.select_for_update().values_list("policy", flat=True).get(pk=project.pk)
    for name, value in changes.items():
        setattr(project, name, value)
    project.save(update_fields=list(changes))
    project_policy_audit(project=project, before=before, actor=actor)
    return project


def project_policy_audit(*, project: Project, before: dict | None, actor: str) -> None:
    """Record a changed policy in the audit log; call it in the transaction that saved it."""
    if project.policy == before:
        return
    record_audit(
        workspace=project.workspace,
        actor=actor,
        action="policy.changed",
        target=f"project:{project.slug}",
        details={"policy": policy_diff(before or {}, project.policy or {})},
    )


def policy_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Changed keys, old and new; for a value that may hold a credential, only that it changed."""
    changed = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            hidden = "webhook" in key or "url" in key
            changed[key] = "changed" if hidden else {"from": old, "to": new}
    return changed


@transaction.atomic(durable=True)
def feature_create(
    *, project: Project, title: str, description: str = "", actor: str, created_by=None
) -> FeatureRequest:
    if not title.strip():
        raise InvalidInput("title must not be empty", field="title")
    taken = set(FeatureRequest.objects.filter(project=project).values_list("slug", flat=True))
    feature = FeatureRequest.objects.create(
        workspace_id=project.workspace_id,
        project=project,
        title=title.strip(),
        description=description,
        slug=unique_slug(title, taken, max_length=80),
        created_by=created_by,
    )
    event_record(
        workspace_id=project.workspace_id,
        kind=EventKind.FEATURE_CREATED,
        message=f"feature requested: {feature.title}",
        actor=actor,
        feature=feature,
    )
    return feature


def apply_subtask_create(
    *, project: Project, key: str, title: str, actor: str, **fields: Any
) -> Subtask:
    if not key.strip():
        raise InvalidInput("key must not be empty", field="key")
    if fields.get("owner_role") == "devops":
        fields["risk"] = "high"  # Dockerfiles and CI reach production: always a human's call
    try:
        with transaction.atomic():
            subtask = Subtask.objects.create(
                workspace_id=project.workspace_id,
                project=project,
                key=key.strip(),
                title=title,
                **fields,
            )
    except IntegrityError:
        raise Conflict(f"subtask {key!r} already exists in {project.name}", field="key") from None
    event_record(
        workspace_id=project.workspace_id,
        kind=EventKind.SUBTASK_CREATED,
        message=f"subtask {subtask.key} created: {subtask.title}",
        actor=actor,
        subtask=subtask,
    )
    return subtask


@transaction.atomic(durable=True)
def subtask_create(*, project: Project, key: str, title: str, actor: str, **fields: Any) -> Subtask:
    return apply_subtask_create(project=project, key=key, title=title, actor=actor, **fields)


def apply_run_enqueue(
    *,
    project: Project,
    role: str,
    step: str,
    actor: str,
    subtask: Subtask | None = None,
    feature: FeatureRequest | None = None,
    profile: AgentProfile | None = None,
    attempt: int = 1,
    available_at=None,
    briefing: str = "",
    cause_event_id: int | None = None,
) -> AgentRun:
    from orchestration.services.dispatch import dispatch_on_commit, profile_for

    try:
        # A savepoint: a redelivered handoff hits the unique cause and changes nothing.
        with transaction.atomic():
            run = AgentRun.objects.create(
                cause_event_id=cause_event_id,
                workspace_id=project.workspace_id,
                project=project,
                feature=feature or (subtask.feature if subtask else None),
                subtask=subtask,
                profile=profile or profile_for(project, role, subtask),
                role=role,
                step=step,
                attempt=attempt,
                available_at=available_at or timezone.now(),
                briefing=briefing,
            )
    except IntegrityError:
        if cause_event_id is None:
            raise
        return AgentRun.objects.get(cause_event_id=cause_event_id)
    event_record(
        workspace_id=project.workspace_id,
        kind=EventKind.RUN_QUEUED,
        message=f"{run.get_step_display()} run queued for {run.get_role_display()}"
        + (f" (attempt {attempt})" if attempt > 1 else ""),
        actor=actor,
        run=run,
    )
    dispatch_on_commit(run)
    return run


@transaction.atomic(durable=True)
def run_enqueue(**kwargs: Any) -> AgentRun:
    return apply_run_enqueue(**kwargs)


@transaction.atomic(durable=True)
def subtask_reassign(*, subtask: Subtask, profile: AgentProfile | None, actor: str) -> Subtask:
    """Give a subtask's next runs (and its queued ones) to another profile of the same role."""
    from orchestration.lock_objects import lock_subtask
    from orchestration.models import RunStatus

    subtask = lock_subtask(subtask.pk)
    if profile is not None and profile.workspace_id != subtask.workspace_id:
        raise InvalidInput("the profile belongs to another workspace", field="profile")
    Subtask.objects.filter(pk=subtask.pk).update(assignee=profile)
    subtask.assignee = profile
    if profile is not None:
        AgentRun.objects.filter(subtask=subtask, status=RunStatus.QUEUED, role=profile.role).update(
            profile=profile, dispatched_at=None
        )
    event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.SUBTASK_STAGE,
        message=f"{subtask.key} reassigned to {profile.name if profile else 'the role default'}",
        actor=actor,
        subtask=subtask,
        data={"assignee": str(profile.code) if profile else None},
    )
    return subtask
