"""A worker carries out one push run: claim it, check, check out, execute, publish, report.

The run's lease is kept alive by a heartbeat thread while the executor works, so a worker
that dies leaves a lease that expires and a run the reaper puts back in the queue. Before
executing, the worker looks for a commit that already carries this run's id: a completion
that was published but never recorded is recorded instead of redone.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone

import gitops
from accounts.scrubbing import scrub, scrub_data
from accounts.secrets import SecretsUnavailable, secrets_for_run
from orchestration import gitflow
from orchestration.errors import LeaseLost
from orchestration.executors.base import ExecutionResult, FailureClass, RunContext, executor_for
from orchestration.models import AgentRun, EventKind, RunStatus, RunStep
from orchestration.policy import policy_for
from orchestration.services import breakers, runs
from orchestration.services.effects import with_db_retry
from orchestration.services.events import event_record

log = logging.getLogger(__name__)


def worker_lease_seconds() -> int:
    return settings.CODEMAESTRO["WORKER_LEASE_SECONDS"]


def run_claim_for_worker(run_id: int, *, worker: str) -> AgentRun | None:
    """Claim this exact run for a worker, or None if someone else has it or it is done."""
    now = timezone.now()
    with transaction.atomic():
        claimed = AgentRun.objects.filter(
            pk=run_id, status=RunStatus.QUEUED, available_at__lte=now
        ).update(
            status=RunStatus.RUNNING,
            lease_id=uuid.uuid4(),
            lease_expires_at=now + timezone.timedelta(seconds=worker_lease_seconds()),
            claimed_by=worker[:120],
            claimed_at=now,
            heartbeat_at=now,
            claim_count=F("claim_count") + 1,
        )
        if not claimed:
            return None
        run = AgentRun.objects.select_related("profile", "subtask", "feature", "project").get(
            pk=run_id
        )
        event_record(
            workspace_id=run.workspace_id,
            kind=EventKind.RUN_CLAIMED,
            message=f"{run.get_step_display()} run started by {worker}",
            actor=worker,
            run=run,
        )
    return run


def run_execute(run_id: int, *, worker: str) -> str:
    """Carry out one queued push run; returns what happened, for the task's log."""
    run = AgentRun.objects.select_related("profile").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.QUEUED or run.profile is None:
        return "not runnable"
    if not breakers.breaker_allows(run.profile):
        return "breaker open: run waits"  # the sweep offers it again; one becomes the trial
    run = run_claim_for_worker(run_id, worker=worker)
    if run is None:
        return "claimed elsewhere"
    try:
        result = _execute_claimed(run)
    except LeaseLost:
        return "lease lost"
    except (OperationalError, InterfaceError):
        # The database went away mid-run. Reporting a failure would be a lie about the
        # agent; instead the lease runs out, the reaper requeues the run, and its next
        # attempt finds the commit if this one was published.
        log.warning("database unavailable during run %s; it will be retried", run.code)
        return "database unavailable"
    except Exception as exc:  # an executor bug must fail the run, not leave it running
        log.exception("run %s crashed", run.code)
        result = ExecutionResult.failed(
            f"executor crashed: {type(exc).__name__}: {exc}", FailureClass.INFRASTRUCTURE
        )
    return with_db_retry(lambda: _report(run, _scrubbed(result)))


def _scrubbed(result: ExecutionResult) -> ExecutionResult:
    # Agents echo, encode, raise and return what they were given in ways no executor
    # masks in advance; nothing stored on the run may carry a secret value.
    result.output, result.error = scrub(result.output), scrub(result.error)
    result.result = scrub_data(result.result)
    return result


def _report(run: AgentRun, result: ExecutionResult) -> str:
    try:
        if result.ok:
            runs.run_complete(
                run=run,
                lease_id=run.lease_id,
                output=result.output,
                result=result.result,
                tokens_in=result.tokens_in,
                tokens_out=result.tokens_out,
                cost=result.cost,
                actor=run.claimed_by,
            )
            return "succeeded"
        runs.run_fail(
            run=run,
            lease_id=run.lease_id,
            error=result.error,
            failure_class=result.failure_class,
            output=result.output,
            actor=run.claimed_by,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            cost=result.cost,
        )
        return f"failed ({result.failure_class})"
    except LeaseLost:
        return "lease lost before reporting"


def _execute_claimed(run: AgentRun) -> ExecutionResult:
    profile = run.profile
    executor = executor_for(profile)
    try:
        secrets = granted_secrets(run)
    except SecretsUnavailable as exc:
        return ExecutionResult.failed(f"secrets: {exc}", FailureClass.INFRASTRUCTURE)
    problems = executor.preflight(profile, secrets)
    if problems:
        return ExecutionResult.failed(
            "preflight: " + "; ".join(problems), FailureClass.INFRASTRUCTURE
        )
    over = budget_exceeded_before(run)
    if over:
        return ExecutionResult.failed(over, FailureClass.BUDGET)
    branch = run.feature.branch if run.feature else run.project.default_branch
    try:
        gitflow.ensure_feature_branch(run.project, branch)
        if run.step != RunStep.PLAN and (sha := gitflow.recorded_commit(run.project, branch, run)):
            return ExecutionResult(
                ok=True,
                output=f"recovered: the run's commit {sha[:8]} was already on {branch}",
                result={"commit": sha, "branch": branch, "recovered": True},
            )
        return _execute_in_worktree(run, executor, secrets, branch)
    except gitops.GitError as exc:
        return ExecutionResult.failed(f"git: {exc}", FailureClass.INFRASTRUCTURE)


def _execute_in_worktree(run, executor, secrets, branch) -> ExecutionResult:
    policy = policy_for(run.project)
    timeout = float(run.profile.executor_config.get("timeout", 900))
    if policy.budget.run_seconds:
        timeout = min(timeout, float(policy.budget.run_seconds))
    with gitflow.checkout(run.project, branch, f"run-{run.code}") as work:
        with tempfile.TemporaryDirectory(prefix="cm-run-") as scratch, Heartbeat(run) as beat:
            context = RunContext(
                run=run,
                profile=run.profile,
                worktree=work.path,
                briefing=run.briefing,
                secrets=secrets,
                timeout_seconds=timeout,
                scratch=Path(scratch),
                keep_alive=beat.check,
            )
            result = executor.execute(context)
        beat.check()
        if not result.ok:
            return result
        over = budget_exceeded_by(run, result)
        if over:
            return ExecutionResult.failed(over, FailureClass.BUDGET, output=result.output)
        if run.step in (RunStep.PLAN, RunStep.REFINE, RunStep.PROMPT_REVIEW):
            return result  # their output is data, validated when the run completes
        if not work.path.is_dir():
            return ExecutionResult.failed(
                "the agent deleted its worktree", FailureClass.INFRASTRUCTURE, result.output
            )
        summary = run.subtask.title if run.subtask else run.get_step_display()
        sha = gitflow.publish(run.project, work, branch, run, summary)
        if sha is None and run.step == RunStep.ADVERSARIAL:
            return result  # QA found nothing worth a new test: a legitimate answer
        if sha is None:
            return ExecutionResult.failed(
                "the agent reported success but changed no file", FailureClass.AGENT, result.output
            )
        result.result = {**result.result, "commit": sha, "base": work.base_sha, "branch": branch}
        return result


class Heartbeat:
    """Extends the run's lease in the background; `check()` raises once it is lost."""

    def __init__(self, run: AgentRun) -> None:
        self.run = run
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"hb-{run.code}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost("the run's lease was lost (cancelled or expired)")

    def _beat(self) -> None:
        from django.db import connection

        interval = max(worker_lease_seconds() / 3, 0.5)
        try:
            while not self._stop.wait(interval):
                try:
                    runs.run_heartbeat(
                        run=self.run,
                        lease_id=self.run.lease_id,
                        lease_seconds=worker_lease_seconds(),
                    )
                except LeaseLost:
                    self.lost.set()
                    return
                except Exception:  # a database blip must not kill the beat; the next one retries
                    log.warning("heartbeat of run %s failed", self.run.code, exc_info=True)
                    connection.close()
        finally:
            connection.close()


def granted_secrets(run: AgentRun) -> dict[str, str]:
    """The profile's granted secrets for the project's environment (each access audited)."""
    return secrets_for_run(run)


def budget_exceeded_before(run: AgentRun) -> str:
    """A feature that has already spent its budget gets no further runs."""
    budget = policy_for(run.project).budget
    if run.feature_id is None:
        return ""
    spent = AgentRun.objects.filter(feature_id=run.feature_id).aggregate(
        tokens=Sum(F("tokens_in") + F("tokens_out")), cost=Sum("cost")
    )
    if budget.feature_tokens is not None and (spent["tokens"] or 0) >= budget.feature_tokens:
        return f"budget: the feature has used {spent['tokens']} of {budget.feature_tokens} tokens"
    if budget.feature_cost is not None and (spent["cost"] or 0) >= budget.feature_cost:
        return f"budget: the feature has cost {spent['cost']} of {budget.feature_cost}"
    if budget.feature_seconds is not None and run.feature:
        elapsed = (timezone.now() - run.feature.created_at).total_seconds()
        if elapsed >= budget.feature_seconds:
            return f"budget: the feature has run {elapsed:.0f}s of {budget.feature_seconds}s"
    return ""


def budget_exceeded_by(run: AgentRun, result: ExecutionResult) -> str:
    budget = policy_for(run.project).budget
    tokens = result.tokens_in + result.tokens_out
    if budget.run_tokens is not None and tokens > budget.run_tokens:
        return f"budget: the run used {tokens} tokens, over its cap of {budget.run_tokens}"
    if budget.run_cost is not None and result.cost > budget.run_cost:
        return f"budget: the run cost {result.cost}, over its cap of {budget.run_cost}"
    return ""
