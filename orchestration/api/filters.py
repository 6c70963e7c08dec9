from __future__ import annotations

import django_filters
from django.db.models import Q

from accounts.models import AgentRole
from orchestration.models import (
    AgentRun,
    Event,
    FeatureRequest,
    RunStatus,
    Subtask,
    SubtaskDependency,
    SubtaskStatus,
    TestRun,
)


class SubtaskFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=SubtaskStatus.choices)
    project = django_filters.UUIDFilter(field_name="project__code")
    feature = django_filters.UUIDFilter(field_name="feature__code")
    role = django_filters.ChoiceFilter(field_name="owner_role", choices=AgentRole.choices)
    q = django_filters.CharFilter(method="filter_text", max_length=200)

    class Meta:
        model = Subtask
        fields = ["status", "project", "feature", "role", "risk", "q"]

    def filter_text(self, queryset, name, value):
        return queryset.filter(
            Q(key__icontains=value) | Q(title__icontains=value) | Q(description__icontains=value)
        )


class FeatureFilter(django_filters.FilterSet):
    project = django_filters.UUIDFilter(field_name="project__code")

    class Meta:
        model = FeatureRequest
        fields = ["project", "status"]


class EventFilter(django_filters.FilterSet):
    subtask = django_filters.UUIDFilter(field_name="subtask__code")
    project = django_filters.UUIDFilter(field_name="project__code")
    run = django_filters.UUIDFilter(field_name="run__code")
    kind = django_filters.CharFilter(field_name="kind")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    after = django_filters.NumberFilter(field_name="id", lookup_expr="gt")

    class Meta:
        model = Event
        fields = ["subtask", "project", "run", "kind", "since", "until", "after"]


class RunFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    role = django_filters.ChoiceFilter(choices=AgentRole.choices)
    subtask = django_filters.UUIDFilter(field_name="subtask__code")

    class Meta:
        model = AgentRun
        fields = ["status", "role", "subtask", "step"]


class DependencyFilter(django_filters.FilterSet):
    subtask = django_filters.UUIDFilter(field_name="subtask__code")
    depends_on = django_filters.UUIDFilter(field_name="depends_on__code")

    class Meta:
        model = SubtaskDependency
        fields = ["subtask", "depends_on"]


class TestRunFilter(django_filters.FilterSet):
    subtask = django_filters.UUIDFilter(field_name="subtask__code")
    project = django_filters.UUIDFilter(field_name="project__code")

    class Meta:
        model = TestRun
        fields = ["subtask", "project", "status", "purpose"]
