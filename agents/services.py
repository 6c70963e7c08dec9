"""What agents change: questions and answers, patches published on a run's branch, results.

Questions are plain database writes in one durable transaction each. A patch is applied
and published with git outside any transaction (git is slow and cannot roll back); the
run's commit carries its id as a trailer, so reporting the result later finds it again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

import gitops
from agents.models import Question
from orchestration import gitflow
from orchestration.errors import Conflict, DomainError, InvalidInput, LeaseLost
from orchestration.lock_objects import lock_subtask
from orchestration.models import AgentRun, EventKind, RunStatus, RunStep, Subtask, SubtaskStatus
from orchestration.services import runs
from orchestration.services.events import event_record
from orchestration.services.transitions import apply_subtask_transition

QUESTION_ASKED = EventKind.QUESTION_ASKED
QUESTION_ANSWERED = EventKind.QUESTION_ANSWERED
MAX_QUESTION_CHARS = 10_000
MAX_PATCH_BYTES = 5 * 1024 * 1024
BLOCKABLE = (SubtaskStatus.IN_PROGRESS, SubtaskStatus.TESTING, SubtaskStatus.RETRYING)


class PatchRejected(DomainError):
    """The patch cannot be applied to the branch; the reason says what git found."""

    status_code = 422
    code = "patch_rejected"


def blocked_reason_for(question: Question) -> str:
    # Stored on the subtask; the answer resumes it only while this is still the reason.
    return f"waiting for an answer to question {question.code}: {question.text[:300]}"


@transaction.atomic(durable=True)
def question_ask(
    *,
    subtask: Subtask,
    text: str,
    asked_by: str,
    blocks_subtask: bool = False,
    run: AgentRun | None = None,
) -> Question:
    """Record a question; a blocking one blocks the subtask and ends the asking run."""
    text = text.strip()
    if not text:
        raise InvalidInput("the question must not be empty", field="text")
    if len(text) > MAX_QUESTION_CHARS:
        raise InvalidInput(f"a question has at most {MAX_QUESTION_CHARS} characters", field="text")
    if run is not None and run.subtask_id != subtask.pk:
        raise InvalidInput("the run belongs to another subtask", field="run")
    question = Question.objects.create(
        workspace_id=subtask.workspace_id,
        subtask=subtask,
        run=run,
        asked_by=asked_by[:120],
        text=text,
        blocks_subtask=blocks_subtask,
    )
    event_record(
        workspace_id=subtask.workspace_id,
        kind=QUESTION_ASKED,
        message=f"{subtask.key}: {asked_by} asks: {text[:300]}",
        actor=asked_by,
        subtask=subtask,
        run=run,
        data={"question": str(question.code), "blocks": blocks_subtask},
    )
    if blocks_subtask:
        _block_on(question, subtask, run, asked_by)
    return question


def _block_on(question: Question, subtask: Subtask, run: AgentRun | None, actor: str) -> None:
    locked = lock_subtask(subtask.pk)
    if locked.status in BLOCKABLE:
        apply_subtask_transition(locked, "block", actor=actor, reason=blocked_reason_for(question))
    if run is not None:
        # The asking agent stops here; resuming the subtask queues a fresh run for its stage.
        runs.apply_run_cancel(run=run, actor=actor, reason="blocked on a question")


@transaction.atomic(durable=True)
def question_answer(*, question: Question, answer: str, answered_by: str) -> Question:
    """Answer a question once; the last blocking answer resumes the subtask it blocked."""
    answer = answer.strip()
    if not answer:
        raise InvalidInput("the answer must not be empty", field="answer")
    question = Question.objects.select_for_update().get(pk=question.pk)
    if not question.is_open:
        raise Conflict(f"the question was already answered by {question.answered_by}")
    question.answer = answer
    question.answered_by = answered_by[:120]
    question.answered_at = timezone.now()
    question.save(update_fields=["answer", "answered_by", "answered_at"])
    subtask = question.subtask
    event_record(
        workspace_id=question.workspace_id,
        kind=QUESTION_ANSWERED,
        message=f"{subtask.key}: {answered_by} answered: {answer[:300]}",
        actor=answered_by,
        subtask=subtask,
        data={"question": str(question.code)},
    )
    if question.blocks_subtask:
        _resume_after(question, answered_by)
    return question


def _resume_after(question: Question, actor: str) -> None:
    subtask = lock_subtask(question.subtask_id)
    if subtask.status != SubtaskStatus.BLOCKED:
        return
    if subtask.blocked_reason != blocked_reason_for(question):
        return  # blocked since for another reason: a person decides
    apply_subtask_transition(subtask, "resume", actor=actor, reason="question answered")


@dataclass(frozen=True)
class Published:
    commit: str
    base: str
    branch: str
    files: list[str]


def patch_submit(*, run: AgentRun, lease_id: uuid.UUID, patch: str) -> Published:
    """Apply a unified diff to the run's branch and publish it as the run's commit.

    Refused with git's reason if it does not apply; the run keeps running either way, so
    the agent can send a corrected patch or report the failure.
    """
    _require_lease(run, lease_id)
    if run.step == RunStep.PLAN or run.subtask_id is None:
        raise InvalidInput("a plan run reports its manifest as its result, not as a patch")
    if not patch.strip():
        raise InvalidInput("the patch is empty", field="patch")
    if len(patch.encode()) > MAX_PATCH_BYTES:
        raise InvalidInput(f"a patch has at most {MAX_PATCH_BYTES} bytes", field="patch")
    branch = run_branch(run)
    try:
        gitflow.ensure_feature_branch(run.project, branch)
        # A name of its own per submission: a leftover of the same name would be removed.
        name = f"patch-{run.code}-{uuid.uuid4().hex[:8]}"
        with gitflow.checkout(run.project, branch, name) as work:
            gitops.apply_patch(work.path, patch)
            files = gitops.changed_files(work.path)
            sha = gitflow.publish(run.project, work, branch, run, run.subtask.title)
    except gitops.GitError as exc:
        reason = (exc.stderr or "").strip() or str(exc)
        raise PatchRejected(f"{exc}: {reason}" if reason != str(exc) else reason) from exc
    if sha is None:
        raise PatchRejected("the patch changes nothing")
    return Published(commit=sha, base=work.base_sha, branch=branch, files=files)


def run_branch(run: AgentRun) -> str:
    return run.feature.branch if run.feature_id else run.project.default_branch


def _require_lease(run: AgentRun, lease_id: uuid.UUID) -> None:
    held = AgentRun.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, lease_id=lease_id, lease_expires_at__gt=timezone.now()
    ).exists()
    if not held:
        raise LeaseLost("this lease is not held: the run finished, expired or was re-claimed")


def result_report(
    *,
    run: AgentRun,
    lease_id: uuid.UUID,
    success: bool,
    actor: str,
    output: str = "",
    error: str = "",
    failure_class: str = "agent",
    result: dict[str, Any] | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Decimal = Decimal(0),
) -> AgentRun:
    """Finish a run: success records the commits its patches published; failure the reason."""
    usage = {"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost, "actor": actor}
    if not success:
        return runs.run_fail(
            run=run,
            lease_id=lease_id,
            error=error.strip() or "the agent reported a failure",
            failure_class=failure_class,
            output=output,
            **usage,
        )
    result = dict(result or {})
    if run.step != RunStep.PLAN:
        _require_lease(run, lease_id)
        result.update(_published_by(run))
    return runs.run_complete(run=run, lease_id=lease_id, output=output, result=result, **usage)


def _published_by(run: AgentRun) -> dict[str, str]:
    """The run's commits on its branch: the newest, and where the first one started."""
    branch = run_branch(run)
    try:
        repo = gitflow.repository(run.project)
        commits = gitops.commits_for_run(repo, branch, run.code)
        if not commits:
            raise InvalidInput(
                "no patch was published for this run: submit a patch first, or report a failure"
            )
        base = gitops.head_commit(repo, f"{commits[-1].sha}^")
    except gitops.GitError as exc:
        raise Conflict(f"git: {exc}") from exc
    return {"commit": commits[0].sha, "base": base, "branch": branch}
