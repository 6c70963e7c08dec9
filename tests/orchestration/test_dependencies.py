from __future__ import annotations

import pytest

from orchestration.errors import DependencyRefused
from orchestration.models import Event, EventKind, SubtaskDependency
from orchestration.services import dependencies
from tests.factories import SubtaskFactory

pytestmark = pytest.mark.django_db


def chain(n: int):
    first = SubtaskFactory(key="S1")
    tasks = [first] + [SubtaskFactory(key=f"S{i}", project=first.project) for i in range(2, n + 1)]
    for later, earlier in zip(tasks[1:], tasks, strict=False):
        dependencies.dependency_add(subtask=later, depends_on=earlier, actor="user:t")
    return tasks


def test_adding_an_edge_records_an_event():
    a, b = chain(2)
    assert SubtaskDependency.objects.filter(subtask=b, depends_on=a).exists()
    assert Event.objects.filter(subtask=b, kind=EventKind.DEPENDENCY_ADDED).count() == 1


def test_an_edge_closing_a_cycle_is_refused_with_the_cycle_named():
    s1, _s2, s3 = chain(3)
    edges_before = SubtaskDependency.objects.count()
    with pytest.raises(DependencyRefused, match="cycle: S1 → S3 → S2 → S1"):
        dependencies.dependency_add(subtask=s1, depends_on=s3, actor="user:t")
    assert SubtaskDependency.objects.count() == edges_before
    assert not Event.objects.filter(subtask=s1, kind=EventKind.DEPENDENCY_ADDED).exists()


def test_self_dependency_is_refused():
    (s1,) = chain(1)
    with pytest.raises(DependencyRefused, match="cannot depend on itself"):
        dependencies.dependency_add(subtask=s1, depends_on=s1, actor="user:t")


def test_cross_project_dependency_is_refused():
    a = SubtaskFactory()
    b = SubtaskFactory(project__workspace=a.workspace)
    with pytest.raises(DependencyRefused, match="different projects"):
        dependencies.dependency_add(subtask=a, depends_on=b, actor="user:t")
    assert not SubtaskDependency.objects.exists()


def test_adding_the_same_edge_twice_keeps_one():
    a, b = chain(2)
    dependencies.dependency_add(subtask=b, depends_on=a, actor="user:t")
    assert SubtaskDependency.objects.filter(subtask=b, depends_on=a).count() == 1
    assert Event.objects.filter(subtask=b, kind=EventKind.DEPENDENCY_ADDED).count() == 1


def test_a_diamond_is_not_a_cycle():
    top = SubtaskFactory(key="top")
    left = SubtaskFactory(key="left", project=top.project)
    right = SubtaskFactory(key="right", project=top.project)
    bottom = SubtaskFactory(key="bottom", project=top.project)
    for later, earlier in [(left, top), (right, top), (bottom, left), (bottom, right)]:
        dependencies.dependency_add(subtask=later, depends_on=earlier, actor="user:t")
    assert SubtaskDependency.objects.count() == 4
