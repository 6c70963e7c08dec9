from __future__ import annotations

from django.db import models

from orchestration.models.projects import Project


class Trigger(models.TextChoices):
    FRD_COMPLETE = "frd_complete", "Orion marks the FRD complete"
    TESTS_READY = "tests_ready", "Tara marks tests ready (and they are red)"
    IMPLEMENTATION_COMPLETE = "implementation_complete", "Devon marks the implementation complete"
    TESTS_PASSED = "tests_passed", "Tests pass"
    TESTS_FAILED = "tests_failed", "Tests fail"
    ESCALATED = "escalated", "A subtask is escalated to a human"


class HandoffAction(models.TextChoices):
    QUEUE_TESTS = "queue_tests", "Tara receives a run to write tests"
    QUEUE_IMPLEMENTATION = "queue_implementation", "Devon receives a run to implement"
    RUN_TESTS = "run_tests", "The test runner executes the project's tests"
    OPEN_REVIEW = "open_review", "A change set is opened for review"
    QUEUE_RETRY = "queue_retry", "Devon receives a retry run with the failure context"
    NOTIFY = "notify", "Stop and notify a human"
    QUEUE_REFINE = "queue_refine", "The product manager sharpens the requirements, then Tara"
    QUEUE_QA = "queue_qa", "QA/Breaker attacks the change with adversarial tests, then review"
    QUEUE_PROMPT_REVIEW = (
        "queue_prompt_review",
        "The prompt engineer proposes a better prompt for the agent that failed",
    )


DEFAULT_HANDOFFS: dict[str, str] = {
    Trigger.FRD_COMPLETE: HandoffAction.QUEUE_TESTS,
    Trigger.TESTS_READY: HandoffAction.QUEUE_IMPLEMENTATION,
    Trigger.IMPLEMENTATION_COMPLETE: HandoffAction.RUN_TESTS,
    Trigger.TESTS_PASSED: HandoffAction.OPEN_REVIEW,
    Trigger.TESTS_FAILED: HandoffAction.QUEUE_RETRY,
}


class HandoffRule(models.Model):
    """One row of a project's handoff table: on this trigger, do that (admins may change it).

    A project without rows uses DEFAULT_HANDOFFS; a disabled rule, or the NOTIFY action,
    stops the automatic cycle at that point and asks a human to move the work on.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="handoff_rules")
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    action = models.CharField(max_length=32, choices=HandoffAction.choices)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["project", "trigger"]
        constraints = [
            models.UniqueConstraint(fields=["project", "trigger"], name="unique_handoff_trigger"),
        ]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} → {self.get_action_display()}"
