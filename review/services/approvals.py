"""Approvals: the gates between green tests and main, by risk tier.

| risk   | plan gate (before Devon acts) | merge gate (per head)                          |
|--------|-------------------------------|------------------------------------------------|
| low    | none                          | approved by the policy when tests are green    |
| medium | none                          | a reviewer approves                            |
| high   | a reviewer approves the plan  | a reviewer approves                            |

Separation of duties, enforced here whatever the caller: only a person with the review
right (reviewer or admin) decides; never an agent; never the person who filed the feature;
never the person whose commit is the head (the last push is approved by someone else).
A merge approval holds for its revision's head only: a new push dismisses it.
"""

from __future__ import annotations

from django.db import transaction

from accounts.permissions import Action, Principal, can
from audit.services import record_audit
from orchestration.errors import Conflict, InvalidInput, NotAllowed
from orchestration.lock_objects import lock_subtask
from orchestration.models import (
    EventKind,
    FeatureRequest,
    Risk,
    Stage,
    Subtask,
    SubtaskStatus,
    TestRun,
    TestRunPurpose,
    TestRunStatus,
)
from orchestration.services import handoffs_table
from orchestration.services.effects import enqueue_on_commit
from orchestration.services.events import event_record
from orchestration.services.transitions import apply_subtask_transition
from review.models import Approval, ApprovalKind, ApprovalState, ChangeSet, Revision
from review.services.changesets import changeset_update_for, latest_revision, lock_changeset

ACTOR = "orchestrator"
POLICY_ACTOR = "policy:low-risk"
DECISIONS = ("approve", "request_changes")
AUDIT_ACTIONS = {
    ApprovalState.APPROVED: "approval.granted",
    ApprovalState.CHANGES_REQUESTED: "changes.requested",
}


# --- opened by the lifecycle ---------------------------------------------------------------


def review_open(subtask: Subtask, cause_event_id: int | None = None) -> Approval | None:
    """After green tests (subtask locked, now ready_for_review): update the change set and
    put up its merge gate; low risk with green tests on the head approves at once."""
    if subtask.feature_id is None:
        return None  # work outside a feature has no branch to review: a person completes it
    changeset = changeset_update_for(subtask.feature)
    if changeset is None:
        return None
    gate = merge_gate(changeset)
    if gate.state == ApprovalState.PENDING and _auto_approvable(changeset):
        gate.approve(None, POLICY_ACTOR, "low risk and tests green on this head")
        gate.auto = True
        gate.save()
        _record_decision(gate, POLICY_ACTOR)
    if gate.state == ApprovalState.APPROVED:
        _complete_ready_subtasks(changeset, actor=gate.decided_by_label or POLICY_ACTOR)
        schedule_merge(changeset)
    return gate


def merge_gate(changeset: ChangeSet) -> Approval:
    """The merge approval of the change set's latest revision, put up when missing."""
    revision = latest_revision(changeset)
    gate = Approval.objects.select_for_update().filter(revision=revision, kind="merge").first()
    if gate is not None:
        return gate
    gate = Approval.objects.create(
        workspace_id=changeset.workspace_id,
        feature_id=changeset.feature_id,
        changeset=changeset,
        revision=revision,
        kind=ApprovalKind.MERGE,
        head_sha=revision.head_sha,
        risk=changeset.risk,
    )
    if changeset.risk != Risk.LOW:
        event_record(
            workspace_id=changeset.workspace_id,
            kind=EventKind.REVIEW_APPROVAL,
            message=f"{changeset.branch}: revision {revision.number} waits for a reviewer "
            f"({changeset.risk} risk)",
            actor=ACTOR,
            feature=changeset.feature,
            data={"approval": str(gate.code), "state": gate.state, "kind": gate.kind},
        )
    return gate


def _auto_approvable(changeset: ChangeSet) -> bool:
    return (
        changeset.risk == Risk.LOW
        and auto_approves_low_risk(changeset.project)
        and tests_green_at(changeset, changeset.head_sha)
    )


def auto_approves_low_risk(project) -> bool:
    """The project's policy `{"approval": {"auto_approve_low": false}}` turns it off."""
    approval = (project.policy or {}).get("approval") or {}
    return bool(approval.get("auto_approve_low", True))


def tests_green_at(changeset: ChangeSet, sha: str) -> bool:
    """The latest verifying test run of this exact commit passed."""
    latest = (
        TestRun.objects.filter(
            feature_id=changeset.feature_id, purpose=TestRunPurpose.VERIFY, commit_sha=sha
        )
        .exclude(status__in=[TestRunStatus.QUEUED, TestRunStatus.RUNNING])
        .order_by("-id")
        .first()
    )
    return latest is not None and latest.status == TestRunStatus.PASSED


def plan_gate_open(subtask: Subtask, cause_event_id: int | None = None) -> bool:
    """Whether Devon may act on this subtask; a high-risk plan without an approval puts up
    a pending plan gate (once) and answers False. Called with the subtask locked."""
    if subtask.risk != Risk.HIGH or subtask.feature_id is None:
        return True
    live = Approval.objects.filter(
        subtask=subtask,
        kind=ApprovalKind.PLAN,
        state__in=[ApprovalState.PENDING, ApprovalState.APPROVED],
    ).first()
    if live is not None:
        return live.state == ApprovalState.APPROVED
    gate = Approval.objects.create(
        workspace_id=subtask.workspace_id,
        feature_id=subtask.feature_id,
        subtask=subtask,
        kind=ApprovalKind.PLAN,
        risk=Risk.HIGH,
    )
    changeset_update_for(subtask.feature)  # so the reviewer sees Tara's tests with the plan
    event_record(
        workspace_id=subtask.workspace_id,
        kind=EventKind.REVIEW_APPROVAL,
        message=f"{subtask.key}: high-risk plan waits for a reviewer before Devon acts",
        actor=ACTOR,
        subtask=subtask,
        data={"approval": str(gate.code), "state": gate.state, "kind": gate.kind},
    )
    return False


# --- decided by a person -------------------------------------------------------------------


def check_may_decide(approval: Approval, principal: Principal) -> None:
    """Refuse (NotAllowed) anyone the separation of duties excludes from this decision."""
    check_may_approve(
        principal,
        workspace_id=approval.workspace_id,
        feature=approval.feature,
        revision=approval.revision,
    )


def check_may_approve(
    principal: Principal | None,
    *,
    workspace_id: int,
    feature: FeatureRequest,
    revision: Revision | None = None,
) -> None:
    """The separation of duties for approving `feature`'s changes (at `revision`)."""
    if principal is None or principal.is_agent or principal.user is None:
        raise NotAllowed("agents never approve or decide reviews")
    # The feature's project: a role set on the project replaces the workspace role there.
    if not can(principal, Action.REVIEW, workspace_id, project=feature.project_id):
        raise NotAllowed("only reviewers and admins decide reviews")
    if feature.created_by_id is not None and feature.created_by_id == principal.user.pk:
        raise NotAllowed("the person who filed the feature cannot approve its changes")
    if revision is not None and revision.pushed_by_user_id == principal.user.pk:
        raise NotAllowed("the last push must be approved by someone else")


def _check_reviewer(principal: Principal | None, workspace_id: int, project_id: int) -> None:
    if (
        principal is None
        or principal.is_agent
        or not can(principal, Action.REVIEW, workspace_id, project=project_id)
    ):
        raise NotAllowed("only reviewers and admins decide reviews")


@transaction.atomic(durable=True)
def approval_decide(
    *, approval: Approval, principal: Principal, decision: str, note: str = ""
) -> Approval:
    """Approve or request changes, as a reviewer; refused for anyone else (403) and for a
    gate already decided or dismissed by a newer push (409)."""
    if decision not in DECISIONS:
        raise InvalidInput(f"unknown decision {decision!r}; expected one of {DECISIONS}")
    approval = Approval.objects.select_for_update(of=("self",)).get(pk=approval.pk)
    return apply_approval_decision(approval, principal=principal, decision=decision, note=note)


def apply_approval_decision(
    approval: Approval, *, principal: Principal, decision: str, note: str = ""
) -> Approval:
    """`approval_decide` for a gate the caller's transaction has locked."""
    if decision == "approve":
        check_may_decide(approval, principal)
    else:
        _check_reviewer(principal, approval.workspace_id, approval.feature.project_id)
    if approval.state != ApprovalState.PENDING:
        raise Conflict(
            f"this approval is {approval.get_state_display().lower()}; "
            "a newer revision may need one",
            state=approval.state,
        )
    label = principal.label
    if decision == "request_changes" and not note.strip():
        note = "changes requested; see the open comments"
    getattr(approval, decision)(principal.user, label, note)
    approval.save()
    event = _record_decision(approval, label)
    if approval.kind == ApprovalKind.PLAN:
        _after_plan_decision(approval, label, event.pk)
    else:
        _after_merge_decision(approval, label)
    return approval


# What a subtask transition means for the change set's merge gate.
GATED_TRANSITIONS = {"complete": "approve", "request_changes": "request_changes"}


def subtask_decide(
    subtask: Subtask, name: str, principal: Principal | None, reason: str = ""
) -> Subtask | None:
    """`complete` / `request_changes` on a feature's subtask waiting for review, from any
    entry point (board, API, admin): decided on the change set's merge gate, with its
    rules (risk tier, separation of duties), so completing directly is never a way
    around them. None when the subtask is not under review: the plain transition applies
    (and refuses a wrong state by itself). Runs in the caller's transaction."""
    decision = GATED_TRANSITIONS.get(name)
    if decision is None:
        return None
    current = Subtask.objects.select_related("feature").filter(pk=subtask.pk).first()
    if current is None or current.feature_id is None:
        return None  # work outside a feature has no change set: a person completes it
    if current.status != SubtaskStatus.READY_FOR_REVIEW:
        return None
    if principal is None:
        raise NotAllowed(
            f"{current.key} is under review: only a reviewer's decision on its change set "
            "completes it or sends it back"
        )
    changeset = ChangeSet.objects.filter(feature_id=current.feature_id).first()
    if changeset is None or latest_revision(changeset) is None:
        # No branch to review: the decision is still a person's who may approve.
        if decision == "approve":
            check_may_approve(principal, workspace_id=current.workspace_id, feature=current.feature)
        else:
            _check_reviewer(principal, current.workspace_id, current.feature.project_id)
        return None
    _decide_gate(merge_gate(changeset), principal, decision, reason)
    return Subtask.objects.get(pk=current.pk)


def _decide_gate(gate: Approval, principal: Principal, decision: str, note: str) -> None:
    if gate.state == ApprovalState.PENDING:
        apply_approval_decision(gate, principal=principal, decision=decision, note=note)
        return
    if gate.state == ApprovalState.APPROVED and decision == "approve":
        # Approved already (a subtask became ready on the same head): the rules held.
        check_may_decide(gate, principal)
        _after_merge_decision(gate, principal.label)
        return
    raise Conflict(
        f"the merge approval of revision {gate.revision.number} is "
        f"{gate.get_state_display().lower()}; decide on the change set's latest revision",
        state=gate.state,
    )


def _after_plan_decision(approval: Approval, label: str, cause: int) -> None:
    subtask = lock_subtask(approval.subtask_id)
    if approval.state == ApprovalState.APPROVED:
        # The gate is open now: the same handoff that stopped at it queues Devon.
        if subtask.status == SubtaskStatus.IN_PROGRESS and subtask.stage == Stage.IMPLEMENTATION:
            handoffs_table.queue_implementation(subtask, cause)
        return
    if subtask.status in (SubtaskStatus.IN_PROGRESS, SubtaskStatus.TESTING):
        apply_subtask_transition(
            subtask, "block", actor=label, reason=f"plan changes requested: {approval.note}"
        )


def _after_merge_decision(approval: Approval, label: str) -> None:
    changeset = lock_changeset(approval.changeset_id)
    if approval.revision_id != latest_revision(changeset).pk:
        raise Conflict("a newer push arrived meanwhile; review the latest revision")
    if approval.state == ApprovalState.APPROVED:
        _complete_ready_subtasks(changeset, actor=label)
        schedule_merge(changeset)
        return
    for subtask in _ready_subtasks(changeset):
        # Back to Devon; the open comments go into the next briefing.
        apply_subtask_transition(subtask, "request_changes", actor=label, reason=approval.note)


def _ready_subtasks(changeset: ChangeSet) -> list[Subtask]:
    pks = Subtask.objects.filter(
        feature_id=changeset.feature_id, status=SubtaskStatus.READY_FOR_REVIEW
    ).values_list("pk", flat=True)
    return [lock_subtask(pk) for pk in sorted(pks)]


def _complete_ready_subtasks(changeset: ChangeSet, *, actor: str) -> None:
    for subtask in _ready_subtasks(changeset):
        if subtask.status == SubtaskStatus.READY_FOR_REVIEW:
            apply_subtask_transition(subtask, "complete", actor=actor)


def _record_decision(approval: Approval, label: str):
    what = {
        ApprovalState.APPROVED: "approved",
        ApprovalState.CHANGES_REQUESTED: "changes requested",
    }[approval.state]
    target = (
        f"plan of {approval.subtask.key}"
        if approval.kind == ApprovalKind.PLAN
        else f"revision {approval.revision.number} of {approval.changeset.branch}"
    )
    record_audit(
        workspace=approval.workspace,
        actor="system" if approval.auto else label,
        action=AUDIT_ACTIONS[approval.state],
        target=f"approval:{approval.code}",
        details={
            "kind": approval.kind,
            "what": target,
            "risk": approval.risk,
            "auto": approval.auto,
            "head_sha": approval.head_sha,
        },
    )
    return event_record(
        workspace_id=approval.workspace_id,
        kind=EventKind.REVIEW_APPROVAL,
        message=f"{target}: {what} by {label}" + (" (auto)" if approval.auto else ""),
        actor=label,
        feature=approval.feature,
        subtask=approval.subtask,
        data={
            "approval": str(approval.code),
            "state": approval.state,
            "kind": approval.kind,
            "auto": approval.auto,
            "note": approval.note,
        },
    )


def schedule_merge(changeset: ChangeSet) -> None:
    from review import tasks

    enqueue_on_commit(tasks.merge_changeset, changeset.pk)


def current_gate(changeset: ChangeSet) -> Approval | None:
    revision: Revision | None = latest_revision(changeset)
    if revision is None:
        return None
    return revision.approvals.filter(kind=ApprovalKind.MERGE).first()
