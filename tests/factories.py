"""factory_boy factories for the domain; services are used where a factory would skip rules."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from accounts.models import Membership, Role, Workspace
from orchestration.models import AgentRun, FeatureRequest, Project, Subtask


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"ws-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.AUTHOR


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FeatureRequest

    project = factory.SubFactory(ProjectFactory)
    workspace = factory.SelfAttribute("project.workspace")
    title = factory.Sequence(lambda n: f"Feature {n}")
    slug = factory.Sequence(lambda n: f"feature-{n}")


class SubtaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subtask

    project = factory.SubFactory(ProjectFactory)
    workspace = factory.SelfAttribute("project.workspace")
    key = factory.Sequence(lambda n: f"T-{n:04d}")
    title = factory.Sequence(lambda n: f"Subtask {n}")


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentRun

    subtask = factory.SubFactory(SubtaskFactory)
    project = factory.SelfAttribute("subtask.project")
    workspace = factory.SelfAttribute("subtask.workspace")
    role = "developer"
    step = "implementation"


def set_status(subtask: Subtask, status: str, **fields) -> Subtask:
    """Put a subtask in a state for a test without walking the lifecycle (bypasses FSM)."""
    Subtask.objects.filter(pk=subtask.pk).update(status=status, **fields)
    subtask.refresh_from_db()
    return subtask
