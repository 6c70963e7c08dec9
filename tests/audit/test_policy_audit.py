from __future__ import annotations

from django.contrib.admin.sites import site

from accounts.models import Role
from audit.models import AuditEntry
from audit.verify import verify_chain
from orchestration.models import AgentProfile, Project, PromptProposal
from orchestration.services import proposals
from tests.factories import UserFactory


def patch(client, project, body):
    return client.patch(f"/api/v1/projects/{project.code}/", body, format="json")


def test_an_admin_changing_a_policy_is_audited_with_the_change(api_as, project):
    # given
    project.policy = {"max_attempts": 3, "notify_webhook": "https://hooks.example/T0K3N"}
    project.save(update_fields=["policy"])
    client = api_as(Role.ADMIN)
    # when
    new_policy = {"max_attempts": 5, "notify_webhook": "https://hooks.example/N3W"}
    response = patch(client, project, {"policy": new_policy})
    # then
    assert response.status_code == 200
    assert Project.objects.get(pk=project.pk).policy == new_policy
    entry = AuditEntry.objects.get(action="policy.changed")
    assert (entry.workspace_id, entry.actor, entry.target) == (
        project.workspace_id,
        f"user:{client.user.username}",
        f"project:{project.slug}",
    )
    assert entry.details == {
        "policy": {"max_attempts": {"from": 3, "to": 5}, "notify_webhook": "changed"}
    }
    assert "T0K3N" not in str(entry.details) and "N3W" not in str(entry.details)
    assert verify_chain(project.workspace_id).intact


def test_an_author_may_not_change_a_policy_but_may_rename(api_as, project):
    client = api_as(Role.AUTHOR)
    refused = patch(client, project, {"policy": {"max_attempts": 7}})
    assert refused.status_code == 403
    assert Project.objects.get(pk=project.pk).policy.get("max_attempts") != 7
    renamed = patch(client, project, {"name": "Renamed", "policy": project.policy})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert not AuditEntry.objects.exists()


def test_changing_a_policy_in_the_admin_is_audited(rf, project):
    # given
    staff = UserFactory(is_staff=True, is_superuser=True)
    admin = site._registry[Project]
    request = rf.post("/")
    request.user = staff
    before = dict(project.policy)
    project.policy = {**before, "max_attempts": 9}
    # when
    admin.save_model(request, project, form=None, change=True)
    # then
    entry = AuditEntry.objects.get(action="policy.changed")
    assert entry.actor == f"user:{staff.username}"
    assert entry.details["policy"]["max_attempts"] == {"from": before.get("max_attempts"), "to": 9}


def test_applying_a_prompt_proposal_is_audited_but_rejecting_is_not(workspace):
    # given
    profile = AgentProfile.objects.create(
        workspace=workspace, name="Devon", role="developer", prompt_template="old", prompt_version=2
    )

    def proposal():
        return PromptProposal.objects.create(
            workspace=workspace, profile=profile, base_version=2, proposed_template="new"
        )

    # when
    proposals.proposal_decide(proposal=proposal(), apply=False, actor="user:admin")
    assert not AuditEntry.objects.exists()
    applied = proposals.proposal_decide(proposal=proposal(), apply=True, actor="user:admin")
    # then
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.actor) == (
        "policy.changed",
        "agent_profile:Devon",
        "user:admin",
    )
    assert entry.details == {
        "proposal": str(applied.code),
        "prompt_version": {"from": 2, "to": 3},
    }
