"""The further roles in the cycle: product manager refinement, QA/Breaker, DevOps."""

from __future__ import annotations

import pytest

from orchestration.demo.catalogue import SLUG_V1
from orchestration.models import (
    AgentProfile,
    AgentRun,
    Event,
    EventKind,
    HandoffRule,
    Subtask,
    SubtaskStatus,
)
from orchestration.services import handoffs_table, work
from tests.cycle.test_policies import command_agent, first_subtask

pytestmark = pytest.mark.django_db(transaction=True)


def add_profile(project, name: str, role: str) -> None:
    AgentProfile.objects.create(workspace=project.workspace, name=name, role=role, executor="demo")


def test_the_product_manager_refines_requirements_before_the_tester(demo_project, tmp_path):
    # given: the project routes ready subtasks through the product manager
    HandoffRule.objects.create(project=demo_project, trigger="frd_complete", action="queue_refine")
    add_profile(demo_project, "Pam", "product")
    command_agent(
        demo_project,
        "product",
        tmp_path,
        "pathlib.Path(os.environ['CODEMAESTRO_RESULT_FILE']).write_text(json.dumps({"
        "'requirements': {'developer': 'slugify(text) as specified', "
        "'tester': 'cover accents and punctuation'},"
        "'acceptance_criteria': ['Crème brûlée becomes creme-brulee']}))\n",
    )
    # when
    subtask = first_subtask(demo_project)
    # then: refined text stored, Tara saw it, and the cycle went on to review
    assert subtask.requirements_tester == (
        "cover accents and punctuation\n\nAcceptance criteria:\n- Crème brûlée becomes creme-brulee"
    )
    tara = AgentRun.objects.get(subtask=subtask, step="tests")
    assert "Crème brûlée becomes creme-brulee" in tara.briefing
    assert subtask.status == SubtaskStatus.READY_FOR_REVIEW


def test_an_invalid_refinement_fails_the_run_and_is_retried(demo_project, tmp_path):
    HandoffRule.objects.create(project=demo_project, trigger="frd_complete", action="queue_refine")
    add_profile(demo_project, "Pam", "product")
    command_agent(
        demo_project,
        "product",
        tmp_path,
        "pathlib.Path(os.environ['CODEMAESTRO_RESULT_FILE']).write_text("
        "json.dumps({'requirements': {'developer': ''}}))\n",
    )
    subtask = first_subtask(demo_project)
    refines = AgentRun.objects.filter(subtask=subtask, step="refine").order_by("id")
    assert [r.status for r in refines] == ["failed", "failed", "failed"]
    assert refines[0].error.startswith("invalid refinement: requirements:")
    assert subtask.status == SubtaskStatus.BLOCKED


QA_ATTACK = """from textkit.slug import slugify


def test_empty_text_gives_an_empty_slug():
    assert slugify("") == ""


def test_a_long_title_is_capped_at_fifty_characters():
    assert len(slugify("word " * 100)) <= 50
"""


def test_qa_attacks_each_attempt_and_its_failing_test_sends_devon_back(demo_project, tmp_path):
    # given: QA/Breaker after green tests; its attack finds no length limit at first
    HandoffRule.objects.create(project=demo_project, trigger="tests_passed", action="queue_qa")
    add_profile(demo_project, "Quinn", "qa")
    command_agent(
        demo_project,
        "qa",
        tmp_path,
        f"pathlib.Path('tests/test_attack.py').write_text({QA_ATTACK!r})\n",
    )
    fixed = SLUG_V1.replace('return "-".join(words)', 'return "-".join(words)[:50].rstrip("-")')
    assert fixed != SLUG_V1
    command_agent(
        demo_project,
        "developer",
        tmp_path,
        f"code = {SLUG_V1!r} if attempt == 1 else {fixed!r}\n"
        "pathlib.Path('textkit/slug.py').write_text(code)\n",
    )
    # when
    subtask = first_subtask(demo_project)
    # then: QA ran after each green attempt, Devon fixed what QA found
    assert (subtask.status, subtask.attempts) == (SubtaskStatus.READY_FOR_REVIEW, 1)
    qa_runs = AgentRun.objects.filter(subtask=subtask, step="adversarial").order_by("id")
    assert [(r.attempt, r.status) for r in qa_runs] == [(1, "succeeded"), (2, "succeeded")]
    retry = AgentRun.objects.get(subtask=subtask, step="implementation", attempt=2)
    assert "test_a_long_title_is_capped_at_fifty_characters" in retry.briefing


def test_devops_subtasks_are_high_risk_and_implemented_by_devops(demo_project):
    # given
    subtask = work.subtask_create(
        project=demo_project, key="ci-1", title="CI pipeline", actor="user:a", owner_role="devops"
    )
    add_profile(demo_project, "Dee", "devops")
    # then
    assert subtask.risk == "high"
    from orchestration.services.failures import role_for_step

    assert role_for_step(subtask, "implementation") == "devops"
    assert role_for_step(Subtask(owner_role="developer"), "implementation") == "developer"
    assert handoffs_table.action_for(demo_project, "tests_passed") == "open_review"
    assert not Event.objects.filter(subtask=subtask, kind=EventKind.RUN_QUEUED).exists()


def test_an_escalation_brings_a_prompt_proposal_that_an_admin_applies(demo_project, tmp_path):
    # given: escalations go to the prompt engineer; Devon never gets it right
    from tests.cycle.test_policies import devon_fixing_at

    HandoffRule.objects.create(
        project=demo_project, trigger="escalated", action="queue_prompt_review"
    )
    add_profile(demo_project, "Penny", "prompt")
    command_agent(
        demo_project,
        "prompt",
        tmp_path,
        "pathlib.Path(os.environ['CODEMAESTRO_RESULT_FILE']).write_text(json.dumps({"
        "'profile': 'Devon', 'prompt_template': 'Read the failing assertion first.',"
        "'rationale': 'three attempts ignored the assertion message'}))\n",
    )
    devon_fixing_at(demo_project, tmp_path, attempt=99)
    # when
    subtask = first_subtask(demo_project)
    # then: blocked, and a pending proposal for Devon's prompt
    from orchestration.models import PromptProposal
    from orchestration.services import proposals

    assert subtask.status == SubtaskStatus.BLOCKED
    proposal = PromptProposal.objects.get(subtask=subtask)
    assert (proposal.profile.name, proposal.status, proposal.base_version) == (
        "Devon",
        "pending",
        1,
    )
    # when an admin applies it
    proposals.proposal_decide(proposal=proposal, apply=True, actor="user:admin")
    # then
    devon = AgentProfile.objects.get(workspace=demo_project.workspace, name="Devon")
    assert (devon.prompt_template, devon.prompt_version) == (
        "Read the failing assertion first.",
        2,
    )
    from orchestration.errors import Conflict

    with pytest.raises(Conflict, match="already applied"):
        proposals.proposal_decide(proposal=proposal, apply=False, actor="user:admin")


def test_a_proposal_naming_an_unknown_profile_fails_the_run(demo_project, tmp_path):
    from orchestration.models import PromptProposal
    from tests.cycle.test_policies import devon_fixing_at

    HandoffRule.objects.create(
        project=demo_project, trigger="escalated", action="queue_prompt_review"
    )
    add_profile(demo_project, "Penny", "prompt")
    command_agent(
        demo_project,
        "prompt",
        tmp_path,
        "pathlib.Path(os.environ['CODEMAESTRO_RESULT_FILE']).write_text(json.dumps({"
        "'profile': 'Nobody', 'prompt_template': 'x'}))\n",
    )
    devon_fixing_at(demo_project, tmp_path, attempt=99)
    subtask = first_subtask(demo_project)
    review = AgentRun.objects.get(subtask=subtask, step="prompt_review")
    assert (review.status, review.error) == (
        "failed",
        "invalid prompt proposal: profile: no agent profile named 'Nobody' in this workspace",
    )
    assert not PromptProposal.objects.exists()


def test_a_stale_proposal_cannot_overwrite_a_newer_prompt(demo_project):
    from orchestration.errors import Conflict
    from orchestration.models import PromptProposal
    from orchestration.services import proposals

    devon = AgentProfile.objects.get(workspace=demo_project.workspace, name="Devon")
    proposal = PromptProposal.objects.create(
        workspace=demo_project.workspace, profile=devon, base_version=1, proposed_template="new"
    )
    AgentProfile.objects.filter(pk=devon.pk).update(prompt_version=2, prompt_template="edited")
    with pytest.raises(Conflict, match="prompt changed since"):
        proposals.proposal_decide(proposal=proposal, apply=True, actor="user:admin")
    devon.refresh_from_db()
    assert (devon.prompt_template, devon.prompt_version) == ("edited", 2)
