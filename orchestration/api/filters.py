from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.db.models import Q
from django_filters.fields import IsoDateTimeField

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


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 moment in UTC: PostgreSQL refuses the offsets past ±15:59 that Python
    parses (the API fuzzing sent `+16:21` and got a 500)."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError("this moment is out of range", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


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
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
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
