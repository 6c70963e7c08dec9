"""Risk tiers and their gates, separation of duties, and the merge (stale, red, conflicts)."""

from __future__ import annotations

import pytest
from django.db import transaction

import gitops
from accounts.models import ApiToken, Role
from accounts.permissions import Principal
from accounts.services import membership_set, token_create_for_agent
from orchestration.errors import Conflict, NotAllowed
from orchestration.lock_objects import lock_subtask
from orchestration.models import AgentRun, Event, EventKind, FeatureStatus, TestRun
from orchestration.services import handoffs_table
from review.models import Approval, ChangeSet, ReviewComment
from review.services import approvals, changesets, comments, merging
from tests.factories import MembershipFactory, set_status
from tests.review.conftest import commit_all, git

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run on-commit effects (handoffs, the merge task) inline, as the workers would."""

    def run(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return run


def _tests_pass(setup, subtask, *, green: bool = True):
    """The subtask's verifying tests just passed on the branch head: the handoff runs."""
    set_status(subtask, "testing", stage="implementation")
    if green:
        setup.green()
    with transaction.atomic():
        handoffs_table.open_review(lock_subtask(subtask.pk), 0)


def _decide(setup, approval, decision="approve", user=None, note=""):
    return approvals.approval_decide(
        approval=approval,
        principal=Principal(user=user or setup.reviewer),
        decision=decision,
        note=note,
    )


def _main(setup) -> str:
    return gitops.head_commit(setup.repo, "main")


def test_low_risk_with_green_tests_is_auto_approved_completed_and_merged(setup, run_on_commit):
    # given
    subtask = setup.subtask(risk="low")
    head = setup.push({"docs/usage.md": "# Usage\n"})
    main_before = _main(setup)
    # when
    run_on_commit(_tests_pass, setup, subtask)
    # then
    subtask.refresh_from_db()
    changeset = ChangeSet.objects.get(feature=setup.feature)
    gate = Approval.objects.get(kind="merge")
    assert (subtask.status, gate.state, gate.auto) == ("completed", "approved", True)
    assert gate.decided_by is None and gate.decided_by_label == "policy:low-risk"
    assert (changeset.status, changeset.risk) == ("merged", "low")
    merge = changeset.merged_sha
    assert _main(setup) == merge
    assert git(setup.repo, "rev-list", "--parents", "-n1", merge).split()[1:] == [
        main_before,
        head,
    ]
    setup.feature.refresh_from_db()
    assert setup.feature.status == FeatureStatus.DONE
    assert Event.objects.filter(kind=EventKind.REVIEW_MERGED).count() == 1


def test_low_risk_without_green_tests_on_the_head_is_not_auto_approved(setup, run_on_commit):
    subtask = setup.subtask(risk="low")
    setup.push({"docs/a.md": "a\n"})
    setup.green()  # green on the first commit…
    setup.push({"docs/b.md": "b\n"})  # …but the head moved after the run
    run_on_commit(_tests_pass, setup, subtask, green=False)
    subtask.refresh_from_db()
    assert subtask.status == "ready_for_review"
    assert Approval.objects.get(kind="merge").state == "pending"
    assert ChangeSet.objects.get().status == "open"


def test_medium_risk_waits_for_a_reviewer_and_then_merges(setup, run_on_commit):
    # given: a new template is a UI component
    subtask = setup.subtask(risk="low")
    head = setup.push({"templates/widget.html": "<p>hi</p>\n"})
    run_on_commit(_tests_pass, setup, subtask)
    gate = Approval.objects.get(kind="merge")
    changeset = ChangeSet.objects.get()
    assert (gate.state, changeset.risk, changeset.status) == ("pending", "medium", "open")
    assert changeset.risk_reasons == [
        {"tier": "medium", "reason": "UI component: templates/widget.html"},
        {"tier": "low", "reason": "declared low by subtask " + subtask.key},
    ]
    assert _main(setup) != head
    # when
    run_on_commit(_decide, setup, gate, note="looks right")
    # then
    subtask.refresh_from_db()
    changeset.refresh_from_db()
    gate.refresh_from_db()
    assert (gate.state, gate.decided_by, gate.note) == ("approved", setup.reviewer, "looks right")
    assert (subtask.status, changeset.status) == ("completed", "merged")
    assert _main(setup) == changeset.merged_sha


def test_high_risk_plan_waits_before_the_developer_acts(setup, run_on_commit):
    # given: Tara's tests are red on a high-risk subtask
    subtask = setup.subtask(risk="high", requirements_developer="Add a migration.")
    set_status(subtask, "in_progress", stage="tests")
    setup.push({"tests/test_x.py": "def test_x():\n    assert False\n"})
    # when: the handoff would queue Devon
    with transaction.atomic():
        handoffs_table.queue_implementation(lock_subtask(subtask.pk), 0)
    # then: no run; a pending plan gate and the change set showing the tests
    assert not AgentRun.objects.filter(subtask=subtask).exists()
    plan = Approval.objects.get(kind="plan")
    assert (plan.state, plan.subtask, plan.risk) == ("pending", subtask, "high")
    assert ChangeSet.objects.get().revisions.count() == 1
    # the same handoff again (a redelivery) changes nothing
    with transaction.atomic():
        handoffs_table.queue_implementation(lock_subtask(subtask.pk), 0)
    assert Approval.objects.filter(kind="plan").count() == 1
    # when: a reviewer approves the plan
    run_on_commit(_decide, setup, plan)
    # then: Devon gets the run, whose briefing holds the plan
    run = AgentRun.objects.get(subtask=subtask)
    assert (run.step, run.role) == ("implementation", "developer")
    assert "Add a migration." in run.briefing


def test_high_risk_needs_a_reviewer_again_before_merge(setup, run_on_commit):
    subtask = setup.subtask(risk="low")
    setup.push({"app/migrations/0002_more.py": "operations = []\n"})
    run_on_commit(_tests_pass, setup, subtask)
    changeset = ChangeSet.objects.get()
    assert changeset.risk == "high"
    assert {"tier": "high", "reason": "database migration: app/migrations/0002_more.py"} in (
        changeset.risk_reasons
    )
    assert Approval.objects.get(kind="merge").state == "pending"
    assert changeset.status == "open"


def test_a_plan_with_changes_requested_blocks_the_subtask(setup, run_on_commit):
    subtask = setup.subtask(risk="high")
    set_status(subtask, "in_progress", stage="tests")
    setup.push({"tests/test_x.py": "x = 1\n"})
    with transaction.atomic():
        handoffs_table.queue_implementation(lock_subtask(subtask.pk), 0)
    plan = Approval.objects.get(kind="plan")
    run_on_commit(_decide, setup, plan, "request_changes", note="split the migration")
    subtask.refresh_from_db()
    assert subtask.status == "blocked"
    assert subtask.blocked_reason == "plan changes requested: split the migration"
    assert not AgentRun.objects.filter(subtask=subtask).exists()


def _medium_gate(setup, run_on_commit, *, author="Alice <alice@example.com>"):
    subtask = setup.subtask(risk="medium")
    setup.push({"src/app.py": "x = 1\n"}, author=author)
    run_on_commit(_tests_pass, setup, subtask)
    return subtask, Approval.objects.get(kind="merge")


def test_the_person_who_filed_the_feature_cannot_approve_it(setup, run_on_commit, workspace):
    # the filer is made a reviewer too: the role alone must not let them approve
    membership_set(workspace=workspace, user=setup.filer, role=Role.REVIEWER)
    subtask, gate = _medium_gate(setup, run_on_commit)
    with pytest.raises(NotAllowed) as refused:
        _decide(setup, gate, user=setup.filer)
    assert refused.value.message == "the person who filed the feature cannot approve its changes"
    gate.refresh_from_db()
    subtask.refresh_from_db()
    assert (gate.state, subtask.status) == ("pending", "ready_for_review")


def test_the_author_of_the_last_push_cannot_approve_it(setup, run_on_commit):
    setup.reviewer.email = "rita@example.com"
    setup.reviewer.save()
    _, gate = _medium_gate(setup, run_on_commit, author="Rita <rita@example.com>")
    with pytest.raises(NotAllowed) as refused:
        _decide(setup, gate)
    assert refused.value.message == "the last push must be approved by someone else"


def test_no_agent_can_approve(setup, run_on_commit, workspace):
    _, gate = _medium_gate(setup, run_on_commit)
    token_create_for_agent(workspace=workspace, role="developer", name="devon")
    agent = Principal(user=None, token=ApiToken.objects.get(name="devon"))
    with pytest.raises(NotAllowed) as refused:
        approvals.approval_decide(approval=gate, principal=agent, decision="approve")
    assert refused.value.message == "agents never approve or decide reviews"
    gate.refresh_from_db()
    assert gate.state == "pending"


@pytest.mark.parametrize("role", [Role.AUTHOR, Role.READER])
def test_only_reviewers_and_admins_approve(setup, run_on_commit, workspace, role):
    _, gate = _medium_gate(setup, run_on_commit)
    user = MembershipFactory(workspace=workspace, role=role).user
    with pytest.raises(NotAllowed):
        _decide(setup, gate, user=user)
    gate.refresh_from_db()
    assert gate.state == "pending"


def test_an_admin_may_approve(setup, run_on_commit, workspace):
    _, gate = _medium_gate(setup, run_on_commit)
    admin = MembershipFactory(workspace=workspace, role=Role.ADMIN).user
    run_on_commit(_decide, setup, gate, user=admin)
    assert ChangeSet.objects.get().status == "merged"


def test_a_new_push_dismisses_the_earlier_approval(setup, run_on_commit):
    # given: revision 1 approved, but another subtask is still going, so nothing merged
    _, gate = _medium_gate(setup, run_on_commit)
    other = setup.subtask(risk="medium")
    set_status(other, "in_progress")
    run_on_commit(_decide, setup, gate)
    gate.refresh_from_db()
    assert gate.state == "approved" and ChangeSet.objects.get().status == "open"
    # when: a new push
    setup.push({"src/more.py": "y = 2\n"})
    changesets.changeset_refresh(feature=setup.feature, actor="test")
    # then: that approval no longer holds; the new head needs its own
    gate.refresh_from_db()
    assert (gate.state, gate.note) == ("dismissed", "dismissed by revision 2 (a new push)")
    run_on_commit(_tests_pass, setup, other)
    new_gate = Approval.objects.get(kind="merge", state="pending")
    assert new_gate.revision.number == 2
    with pytest.raises(Conflict):
        _decide(setup, gate)


def test_request_changes_sends_the_subtask_back_with_the_comments(setup, run_on_commit):
    # given
    subtask, gate = _medium_gate(setup, run_on_commit)
    changeset = ChangeSet.objects.get()
    thread = comments.comment_add(
        changeset=changeset,
        principal=Principal(user=setup.reviewer),
        body="Name this constant; `x` says nothing.",
        path="src/app.py",
        first_line=1,
    )
    # when
    run_on_commit(_decide, setup, gate, "request_changes", note="see the comment")
    # then: back to Devon, whose new briefing carries the open thread
    subtask.refresh_from_db()
    assert (subtask.status, subtask.stage) == ("in_progress", "implementation")
    run = AgentRun.objects.get(subtask=subtask, step="implementation")
    assert "## Open review comments" in run.briefing
    assert "src/app.py line 1" in run.briefing
    assert "Name this constant; `x` says nothing." in run.briefing
    # when Devon's push lands, the thread records the attempt that answered it
    setup.push(
        {"src/app.py": "ANSWER = 1\n"},
        message=f"Devon: rename\n\n{gitops.run_trailer(run.code)}",
        author="Devon <devon@agents.codemaestro.local>",
    )
    changesets.changeset_refresh(feature=setup.feature, actor="test")
    thread.refresh_from_db()
    assert (thread.addressed_by_run, thread.addressed_attempt) == (run, run.attempt)
    revision = changeset.revisions.get(number=2)
    assert (revision.created_by_run, revision.pushed_by) == (run, "agent:Devon")
    assert ReviewComment.objects.get(pk=thread.pk).state == "open"  # a reviewer resolves it


def test_red_tests_on_the_head_never_merge(setup, run_on_commit):
    # given: approved, but the last test run of the head is red
    _, gate = _medium_gate(setup, run_on_commit)
    setup.green(status="failed")
    main_before = _main(setup)
    # when
    run_on_commit(_decide, setup, gate)
    # then
    changeset = ChangeSet.objects.get()
    assert changeset.status == "open"
    assert changeset.merge_note == f"tests are not green on the head {setup.head()[:8]}"
    assert _main(setup) == main_before
    assert Event.objects.filter(kind=EventKind.REVIEW_MERGE_WAITING).count() == 1


def test_stale_tests_are_run_again_on_the_head_and_red_stays_unmerged(setup, run_on_commit):
    # given: green on an older commit only; the head adds a failing marker
    subtask = setup.subtask(risk="medium")
    setup.push({"src/app.py": "x = 1\n"})
    setup.green()
    head = setup.push({"RED": "boom\n"})
    set_status(subtask, "ready_for_review", stage="implementation")
    changesets.changeset_refresh(feature=setup.feature, actor="test")
    with transaction.atomic():
        gate = approvals.merge_gate(ChangeSet.objects.get())
    main_before = _main(setup)
    # when
    run_on_commit(_decide, setup, gate)
    # then: the tests ran on exactly the head, failed, and nothing merged
    run = TestRun.objects.filter(commit_sha=head).get()
    assert (run.status, run.purpose) == ("failed", "verify")
    assert ChangeSet.objects.get().status == "open"
    assert _main(setup) == main_before


def test_a_conflict_marks_the_change_set_with_the_files(setup, run_on_commit):
    # given: main and the branch change the same line
    setup.on_main()
    (setup.repo / "shared.txt").write_text("one\n")
    commit_all(setup.repo, "shared")
    git(setup.repo, "branch", "-f", setup.branch, "main")
    subtask = setup.subtask(risk="medium")
    setup.push({"shared.txt": "branch\n"})
    run_on_commit(_tests_pass, setup, subtask)
    gate = Approval.objects.get(kind="merge")
    (setup.repo / "shared.txt").write_text("main\n")
    main_before = commit_all(setup.repo, "main moves")
    # when
    run_on_commit(_decide, setup, gate)
    # then
    changeset = ChangeSet.objects.get()
    assert (changeset.status, changeset.conflict_files) == ("conflicted", ["shared.txt"])
    assert changeset.merge_note == "conflicts with main in: shared.txt"
    assert _main(setup) == main_before
    assert Event.objects.get(kind=EventKind.REVIEW_CONFLICT).data["files"] == ["shared.txt"]
    # a new push reopens it (its own gate needed again)
    setup.push({"other.txt": "x\n"})
    changesets.changeset_refresh(feature=setup.feature, actor="test")
    assert ChangeSet.objects.get().status == "open"


def test_a_moved_main_is_merged_only_after_tests_pass_on_the_merge(setup, run_on_commit):
    # given: approved; meanwhile main gained an unrelated commit
    _, gate = _medium_gate(setup, run_on_commit)
    (setup.repo / "elsewhere.txt").write_text("main work\n")
    main_before = commit_all(setup.repo, "unrelated work on main")
    # when
    run_on_commit(_decide, setup, gate)
    # then: a merge commit of both, tested before main moved to it
    changeset = ChangeSet.objects.get()
    assert changeset.status == "merged"
    merged = changeset.merged_sha
    assert _main(setup) == merged
    assert git(setup.repo, "rev-list", "--parents", "-n1", merged).split()[1:] == [
        main_before,
        changeset.head_sha,
    ]
    tested = TestRun.objects.get(commit_sha=merged)
    assert (tested.status, tested.subtask) == ("passed", None)


def test_a_moved_main_whose_merge_is_red_does_not_merge(setup, run_on_commit):
    _, gate = _medium_gate(setup, run_on_commit)
    (setup.repo / "RED").write_text("main broke something the branch relies on\n")
    main_before = commit_all(setup.repo, "main adds RED")
    run_on_commit(_decide, setup, gate)
    changeset = ChangeSet.objects.get()
    assert changeset.status == "open"
    assert changeset.merge_note.startswith("main moved; the tests fail on the merge with it")
    assert _main(setup) == main_before


def test_fast_forward_projects_move_main_to_the_tested_head(setup, run_on_commit):
    setup.project.policy = {**setup.project.policy, "merge": "fast_forward"}
    setup.project.save()
    _, gate = _medium_gate(setup, run_on_commit)
    run_on_commit(_decide, setup, gate)
    assert _main(setup) == setup.head() == ChangeSet.objects.get().merged_sha


def test_nothing_merges_while_a_subtask_is_unfinished(setup, run_on_commit):
    _, gate = _medium_gate(setup, run_on_commit)
    other = setup.subtask(risk="low")
    run_on_commit(_decide, setup, gate)
    changeset = ChangeSet.objects.get()
    assert changeset.status == "open"
    assert changeset.merge_note == f"subtasks not completed: {other.key}"
    assert merging.changeset_merge(changeset.pk).merged is False
