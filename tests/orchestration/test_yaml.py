from __future__ import annotations

import textwrap
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestration.errors import DependencyRefused
from orchestration.models import AgentRun, Event, EventKind, Project, Subtask, SubtaskDependency
from orchestration.services import dependencies
from orchestration.yaml_io import importer
from orchestration.yaml_io.exporter import tree_from_project
from orchestration.yaml_io.loader import load_tree
from orchestration.yaml_io.tree import HistoryEntry
from tests.factories import FeatureFactory, ProjectFactory, SubtaskFactory

pytestmark = pytest.mark.django_db

# The complete example of docs/yaml-format.md.
MANIFEST = """\
# Subtasks of the checkout feature, as the legacy agents kept them.
version: 1
subtasks:
  - id: CHK-1
    title: Cart totals API
    status: completed
    owner: developer
    risk: medium
    estimate_hours: 4
    depends_on: []
    description: |
      Expose GET /api/cart/<id>/totals with subtotal, tax and shipping.
  - id: CHK-2
    title: Payment form
    status: in-progress
    owner: developer
    risk: high
    estimate_hours: 6.5
    depends_on:
      - CHK-1
    description: Card form posting to the payment provider.
  - id: CHK-3
    title: Checkout end-to-end tests
    status: blocked
    owner: tester
    depends_on: [CHK-1, CHK-2]
"""
LOG_CHK_2 = """\
requirements:
  developer: |
    - Render the card form with the provider's hosted fields.
    - Show the provider's error message next to the field.
  tester: |
    - A declined card shows "Card declined" and keeps the cart.
blocked_reason: ''
attempts: 1
history:
  - at: 2024-03-04T09:15:00Z
    actor: orion
    message: Planned from the checkout FRD
  - at: 2024-03-04T10:32:11+01:00
    actor: devon
    message: First attempt failed test_declined_card
"""
LOG_CHK_3 = """\
blocked_reason: Waiting for a sandbox account at the payment provider
history:
  - at: 2024-03-05T08:00:00Z
    actor: tara
    message: Blocked until the sandbox exists
"""
LOGS = {"CHK-2": LOG_CHK_2, "CHK-3": LOG_CHK_3}

# A small valid manifest the bad-input cases below start from.
BASE = """\
version: 1
subtasks:
  - id: A
    title: First
    status: pending
  - id: B
    title: Second
    status: pending
    depends_on: [A]
"""


def write_tree(root: Path, manifest: str | None, logs: dict[str, str] | None = None) -> Path:
    """Write root/Agents/manifest.yml and root/Agents/logs/<name>; logs keys are file stems."""
    (root / "Agents" / "logs").mkdir(parents=True)
    if manifest is not None:
        (root / "Agents" / "manifest.yml").write_text(manifest)
    for name, text in (logs or {}).items():
        (root / "Agents" / "logs" / f"{name}.yml").write_text(text)
    return root


def reference(project: Project) -> str:
    return f"{project.workspace.slug}/{project.slug}"


def import_yaml(root: Path, project: Project) -> str:
    out = StringIO()
    call_command("import_yaml", str(root), project=reference(project), stdout=out)
    return out.getvalue()


def export_yaml(root: Path, project: Project, *, force: bool = False) -> str:
    out = StringIO()
    call_command("export_yaml", str(root), project=reference(project), force=force, stdout=out)
    return out.getvalue()


def subtask_rows(project: Project) -> list[tuple]:
    return list(
        Subtask.objects.filter(project=project)
        .order_by("key")
        .values_list(
            "key",
            "title",
            "status",
            "owner_role",
            "risk",
            "estimate_hours",
            "description",
            "requirements_developer",
            "requirements_tester",
            "blocked_reason",
            "attempts",
        )
    )


def edges(project: Project) -> set[tuple[str, str]]:
    return set(
        SubtaskDependency.objects.filter(subtask__project=project).values_list(
            "subtask__key", "depends_on__key"
        )
    )


def legacy_history(project: Project) -> list[tuple]:
    return list(
        Event.objects.filter(project=project, data__source="yaml.history")
        .order_by("created_at", "id")
        .values_list("subtask__key", "kind", "created_at", "actor", "message")
    )


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "legacy", MANIFEST, LOGS)


def test_import_creates_the_subtasks_with_their_legacy_fields(legacy, project):
    # when
    import_yaml(legacy, project)
    # then
    assert subtask_rows(project) == [
        (
            "CHK-1",
            "Cart totals API",
            "completed",
            "developer",
            "medium",
            Decimal("4.00"),
            "Expose GET /api/cart/<id>/totals with subtotal, tax and shipping.\n",
            "",
            "",
            "",
            0,
        ),
        (
            "CHK-2",
            "Payment form",
            "in_progress",
            "developer",
            "high",
            Decimal("6.50"),
            "Card form posting to the payment provider.",
            "- Render the card form with the provider's hosted fields.\n"
            "- Show the provider's error message next to the field.\n",
            '- A declined card shows "Card declined" and keeps the cart.\n',
            "",
            1,
        ),
        (
            "CHK-3",
            "Checkout end-to-end tests",
            "blocked",
            "tester",
            "low",
            None,
            "",
            "",
            "",
            "Waiting for a sandbox account at the payment provider",
            0,
        ),
    ]


def test_import_adds_the_dependencies_through_the_dependency_service(legacy, project):
    # when
    import_yaml(legacy, project)
    # then
    assert edges(project) == {("CHK-2", "CHK-1"), ("CHK-3", "CHK-1"), ("CHK-3", "CHK-2")}
    added = Event.objects.filter(kind=EventKind.DEPENDENCY_ADDED).order_by("id")
    assert [event.message for event in added] == [
        "CHK-2 now depends on CHK-1",
        "CHK-3 now depends on CHK-1",
        "CHK-3 now depends on CHK-2",
    ]


def test_import_stores_legacy_history_as_timeline_events_at_their_own_time(legacy, project):
    # when
    import_yaml(legacy, project)
    # then
    assert legacy_history(project) == [
        ("CHK-2", "import.yaml", datetime(2024, 3, 4, 9, 15, tzinfo=UTC), "orion",
         "Planned from the checkout FRD"),
        ("CHK-2", "import.yaml", datetime(2024, 3, 4, 9, 32, 11, tzinfo=UTC), "devon",
         "First attempt failed test_declined_card"),
        ("CHK-3", "import.yaml", datetime(2024, 3, 5, 8, 0, tzinfo=UTC), "tara",
         "Blocked until the sandbox exists"),
    ]  # fmt: skip
    devon = Event.objects.get(actor="devon")
    entry = HistoryEntry(datetime(2024, 3, 4, 9, 32, 11, tzinfo=UTC), "devon",
                         "First attempt failed test_declined_card")  # fmt: skip
    assert devon.data == {
        "source": "yaml.history",
        "hash": importer.history_hash("CHK-2", entry, 1),
        "at": "2024-03-04T10:32:11+01:00",
        "actor": "devon",
        "message": "First attempt failed test_declined_card",
    }


def test_import_records_what_it_imported_and_starts_no_agent_work(legacy, project):
    # when
    output = import_yaml(legacy, project)
    # then
    assert output == (
        f"Imported {legacy} into {reference(project)}: 3 created, 0 updated, 0 unchanged; "
        "dependencies: 3 added, 0 removed; history entries: 3 added\n"
    )
    kinds = Counter(Event.objects.values_list("kind", "data__action"))
    assert kinds == {
        ("subtask.created", None): 3,
        ("import.yaml", "created"): 3,
        ("dependency.added", None): 3,
        ("import.yaml", None): 3,  # the legacy history entries
        ("import.yaml", "summary"): 1,
    }
    created = Event.objects.get(subtask__key="CHK-2", data__action="created")
    assert created.message == "CHK-2 imported from YAML as in_progress"
    assert created.actor == "yaml-import"
    assert created.data["fields"] == {
        "title": "Payment form",
        "status": "in_progress",
        "owner_role": "developer",
        "risk": "high",
        "estimate_hours": "6.50",
        "description": "Card form posting to the payment provider.",
        "requirements_developer": "- Render the card form with the provider's hosted fields.\n"
        "- Show the provider's error message next to the field.\n",
        "requirements_tester": '- A declined card shows "Card declined" and keeps the cart.\n',
        "blocked_reason": "",
        "attempts": 1,
    }
    assert not AgentRun.objects.exists()


def test_reimporting_the_same_tree_changes_nothing(legacy, project):
    # given
    import_yaml(legacy, project)
    subtasks_before = subtask_rows(project)
    updated_before = list(Subtask.objects.order_by("key").values_list("updated_at", flat=True))
    edges_before = edges(project)
    events_before = list(Event.objects.order_by("id").values_list("id", flat=True))
    # when
    output = import_yaml(legacy, project)
    # then
    assert output == (
        f"Imported {legacy} into {reference(project)}: "
        "nothing changed (3 subtasks already up to date)\n"
    )
    assert subtask_rows(project) == subtasks_before
    assert list(Subtask.objects.order_by("key").values_list("updated_at", flat=True)) == (
        updated_before
    )
    assert edges(project) == edges_before
    assert list(Event.objects.order_by("id").values_list("id", flat=True)) == events_before


def test_reimporting_a_changed_tree_updates_only_what_changed(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    last_event = Event.objects.order_by("id").last().pk
    manifest = (
        MANIFEST.replace("title: Payment form", "title: Payment form (hosted fields)")
        .replace("status: in-progress", "status: ready-for-review")
        .replace("depends_on: [CHK-1, CHK-2]", "depends_on: [CHK-2]")
    )
    log = LOG_CHK_3 + (
        "  - at: 2024-03-06T12:00:00Z\n    actor: tara\n    message: Sandbox ready, unblocked\n"
    )
    changed = write_tree(tmp_path / "changed", manifest, {"CHK-2": LOG_CHK_2, "CHK-3": log})
    # when
    output = import_yaml(changed, project)
    # then
    assert output == (
        f"Imported {changed} into {reference(project)}: 0 created, 1 updated, 2 unchanged; "
        "dependencies: 0 added, 1 removed; history entries: 1 added\n"
    )
    chk2 = Subtask.objects.get(project=project, key="CHK-2")
    assert (chk2.title, chk2.status) == ("Payment form (hosted fields)", "ready_for_review")
    new_events = Event.objects.filter(pk__gt=last_event).order_by("id")
    assert [(e.subtask.key if e.subtask else None, e.kind, e.message) for e in new_events] == [
        ("CHK-2", "import.yaml", "CHK-2 updated from YAML: title, status"),
        ("CHK-3", "dependency.removed", "CHK-3 no longer depends on CHK-1"),
        ("CHK-3", "import.yaml", "Sandbox ready, unblocked"),
        (
            None,
            "import.yaml",
            f"YAML import into {project.name}: 0 created, 1 updated, 2 unchanged; "
            "dependencies: 0 added, 1 removed; history entries: 1 added",
        ),
    ]
    assert new_events[0].data == {
        "source": "yaml",
        "action": "updated",
        "changes": {
            "title": {"from": "Payment form", "to": "Payment form (hosted fields)"},
            "status": {"from": "in_progress", "to": "ready_for_review"},
        },
    }
    assert edges(project) == {("CHK-2", "CHK-1"), ("CHK-3", "CHK-2")}
    assert [row[3:] for row in legacy_history(project) if row[0] == "CHK-3"] == [
        ("tara", "Blocked until the sandbox exists"),
        ("tara", "Sandbox ready, unblocked"),
    ]


def test_import_leaves_subtasks_the_tree_does_not_list_alone(legacy, project):
    # given
    other = SubtaskFactory(project=project, key="NATIVE-1", title="Made in CodeMaestro")
    # when
    import_yaml(legacy, project)
    # then
    assert Subtask.objects.get(pk=other.pk).title == "Made in CodeMaestro"
    assert not Event.objects.filter(subtask=other).exists()


def test_import_keeps_apart_a_feature_subtask_with_the_same_key(legacy, project):
    # given
    feature = FeatureFactory(project=project, workspace=project.workspace)
    planned = SubtaskFactory(project=project, feature=feature, key="CHK-1", title="Planned")
    # when
    import_yaml(legacy, project)
    # then
    assert Subtask.objects.get(pk=planned.pk).title == "Planned"
    assert not Event.objects.filter(subtask=planned).exists()
    imported = Subtask.objects.get(project=project, feature=None, key="CHK-1")
    assert imported.title == "Cart totals API"


def test_import_finds_the_project_by_its_code(legacy, project):
    # when
    call_command("import_yaml", str(legacy), project=str(project.code), stdout=StringIO())
    # then
    assert Subtask.objects.filter(project=project).count() == 3


def test_import_into_an_unknown_project_is_refused(legacy, project):
    # when
    with pytest.raises(CommandError) as refused:
        call_command("import_yaml", str(legacy), project="nope/nothing")
    # then
    assert str(refused.value) == "no project 'nope/nothing'; nothing was imported"
    assert not Subtask.objects.exists()
    assert not Event.objects.exists()


def test_a_failure_halfway_through_the_import_rolls_everything_back(legacy, project, monkeypatch):
    # given
    def refuse(*args, **kwargs):
        raise DependencyRefused("refused for the test")

    monkeypatch.setattr(importer, "apply_dependency_add", refuse)
    # when
    with pytest.raises(CommandError) as refused:
        import_yaml(legacy, project)
    # then
    assert str(refused.value) == "refused for the test; nothing was imported"
    assert not Subtask.objects.exists()
    assert not Event.objects.exists()


def test_import_export_import_round_trips_everything(legacy, project, workspace, tmp_path):
    # given
    import_yaml(legacy, project)
    fresh = ProjectFactory(workspace=workspace)
    # when
    export_yaml(tmp_path / "exported", project)
    import_yaml(tmp_path / "exported", fresh)
    # then
    original = load_tree(legacy)
    assert tree_from_project(project) == original
    assert load_tree(tmp_path / "exported") == original
    assert tree_from_project(fresh) == original
    assert subtask_rows(fresh) == subtask_rows(project)
    assert edges(fresh) == edges(project)
    assert [row[1:] for row in legacy_history(fresh)] == [
        row[1:] for row in legacy_history(project)
    ]


def test_history_keeps_the_order_of_the_log_file_even_when_not_chronological(project, tmp_path):
    # given
    log = textwrap.dedent("""\
        history:
          - at: 2024-03-04T10:00:00Z
            actor: devon
            message: written first, happened last
          - at: 2024-03-04T09:00:00Z
            actor: orion
            message: written second, happened first
          - at: 2024-03-04T09:00:00Z
            actor: orion
            message: written second, happened first
        """)
    root = write_tree(tmp_path / "legacy", BASE, {"A": log})
    import_yaml(root, project)
    # when
    export_yaml(tmp_path / "exported", project)
    # then
    assert (tmp_path / "exported" / "Agents" / "logs" / "A.yml").read_text().endswith(log)
    assert Event.objects.filter(data__source="yaml.history").count() == 3


def test_reimporting_an_export_into_its_own_project_changes_nothing(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    export_yaml(tmp_path / "exported", project)
    events_before = Event.objects.count()
    # when
    output = import_yaml(tmp_path / "exported", project)
    # then
    assert output.endswith("nothing changed (3 subtasks already up to date)\n")
    assert Event.objects.count() == events_before


def test_export_writes_the_documented_layout_in_block_style(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    target = tmp_path / "exported"
    # when
    output = export_yaml(target, project)
    # then
    assert output == f"Exported {reference(project)}: 4 files\n"
    files = sorted(str(path.relative_to(target)) for path in target.rglob("*.yml"))
    assert files == [
        "Agents/logs/CHK-1.yml",
        "Agents/logs/CHK-2.yml",
        "Agents/logs/CHK-3.yml",
        "Agents/manifest.yml",
    ]
    assert (target / "Agents" / "manifest.yml").read_text() == textwrap.dedent("""\
        # CodeMaestro legacy subtask manifest (format: docs/yaml-format.md)
        version: 1
        subtasks:
          - id: CHK-1
            title: Cart totals API
            status: completed
            owner: developer
            risk: medium
            estimate_hours: 4
            depends_on: []
            description: |
              Expose GET /api/cart/<id>/totals with subtotal, tax and shipping.
          - id: CHK-2
            title: Payment form
            status: in-progress
            owner: developer
            risk: high
            estimate_hours: 6.5
            depends_on:
              - CHK-1
            description: Card form posting to the payment provider.
          - id: CHK-3
            title: Checkout end-to-end tests
            status: blocked
            owner: tester
            risk: low
            estimate_hours: null
            depends_on:
              - CHK-1
              - CHK-2
            description: ''
        """)
    assert (target / "Agents" / "logs" / "CHK-2.yml").read_text() == (
        "# CodeMaestro legacy log of CHK-2 (format: docs/yaml-format.md)\n" + LOG_CHK_2
    )
    assert (target / "Agents" / "logs" / "CHK-1.yml").read_text() == textwrap.dedent("""\
        # CodeMaestro legacy log of CHK-1 (format: docs/yaml-format.md)
        requirements:
          developer: ''
          tester: ''
        blocked_reason: ''
        attempts: 0
        history: []
        """)


def test_exporting_unchanged_data_twice_gives_identical_files(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    # when
    export_yaml(tmp_path / "first", project)
    export_yaml(tmp_path / "second", project)
    # then
    first = {
        p.relative_to(tmp_path / "first"): p.read_bytes() for p in tmp_path.glob("first/**/*.yml")
    }
    second = {
        p.relative_to(tmp_path / "second"): p.read_bytes() for p in tmp_path.glob("second/**/*.yml")
    }
    assert first == second


def test_export_leaves_out_the_subtasks_of_features(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    feature = FeatureFactory(project=project, workspace=project.workspace)
    SubtaskFactory(project=project, feature=feature, key="S1")
    # when
    export_yaml(tmp_path / "exported", project)
    # then
    assert load_tree(tmp_path / "exported") == load_tree(legacy)


def test_export_refuses_a_dependency_on_a_feature_subtask(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    feature = FeatureFactory(project=project, workspace=project.workspace)
    planned = SubtaskFactory(project=project, feature=feature, key="S1")
    dependencies.dependency_add(
        subtask=Subtask.objects.get(project=project, key="CHK-3"), depends_on=planned, actor="t"
    )
    # when
    with pytest.raises(CommandError) as refused:
        export_yaml(tmp_path / "exported", project)
    # then
    assert str(refused.value) == (
        "some subtasks depend on subtasks of a feature, which the legacy layout cannot hold: S1"
    )
    assert not (tmp_path / "exported").exists()


def test_export_refuses_a_directory_that_is_not_empty(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    # when
    with pytest.raises(CommandError) as refused:
        export_yaml(target, project)
    # then
    assert str(refused.value) == f"{target} is not empty; refusing to overwrite it (use --force)"
    assert [path.name for path in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "keep me"


def test_export_with_force_replaces_the_previous_export(legacy, project, tmp_path):
    # given
    import_yaml(legacy, project)
    target = write_tree(tmp_path / "old", "version: 1\nsubtasks: []\n", {"GONE-1": "attempts: 2\n"})
    (target / "notes.txt").write_text("keep me")
    # when
    export_yaml(target, project, force=True)
    # then
    assert sorted(path.name for path in (target / "Agents" / "logs").iterdir()) == [
        "CHK-1.yml",
        "CHK-2.yml",
        "CHK-3.yml",
    ]
    assert (target / "notes.txt").read_text() == "keep me"
    assert load_tree(target) == load_tree(legacy)


def refused_problems(root: Path, project: Project) -> list[str]:
    """Run the import expecting a refusal; return its problem lines with paths shortened."""
    with pytest.raises(CommandError) as refused:
        import_yaml(root, project)
    header, *problems = str(refused.value).splitlines()
    assert header.endswith(f"in {root}; nothing was imported:")
    return [line.replace(f"{root}/Agents/", "") for line in problems]


def with_log(text: str) -> dict[str, str]:
    return {"A": text}


BAD_INPUTS = [
    pytest.param(
        "version: 1\nsubtasks:\n  - id: A\n    title: First\n   status: pending\n",
        {},
        [
            "manifest.yml:5: YAML syntax error: expected <block end>, but found "
            "'<block mapping start>' (while parsing a block collection started on line 3)"
        ],
        id="manifest-yaml-syntax",
    ),
    pytest.param(
        BASE,
        with_log("history: [\n"),
        [
            "logs/A.yml:2: YAML syntax error: expected the node content, but found "
            "'<stream end>' (while parsing a flow node started on line 2)"
        ],
        id="log-yaml-syntax",
    ),
    pytest.param(
        BASE.replace("depends_on: [A]", "depends_on: A"),
        {},
        ["manifest.yml:9: depends_on must be a list of ids, got text ('A')"],
        id="wrong-type-list",
    ),
    pytest.param(
        BASE.replace("title: First", "title: 42"),
        {},
        ["manifest.yml:4: title must be non-empty text, got an integer (42)"],
        id="wrong-type-text",
    ),
    pytest.param(
        BASE,
        with_log("attempts: three\n"),
        ["logs/A.yml:1: attempts must be a whole number of 0 or more, got text ('three')"],
        id="wrong-type-integer",
    ),
    pytest.param(
        BASE.replace("title: First", "title: First\n    estimate_hours: 1.234"),
        {},
        [
            "manifest.yml:5: estimate_hours must be a number of hours from 0 to 99999.99 with "
            "at most 2 decimals, got a number (1.234)"
        ],
        id="estimate-too-precise",
    ),
    pytest.param(
        BASE.replace("status: pending", "status: done", 1),
        {},
        [
            "manifest.yml:5: status 'done' is not one of: pending, in-progress, testing, "
            "ready-for-review, completed, blocked, failed, retrying"
        ],
        id="status-enum",
    ),
    pytest.param(
        BASE.replace("status: pending", "status: in_progress", 1),
        {},
        [
            "manifest.yml:5: status 'in_progress' is not one of: pending, in-progress, testing, "
            "ready-for-review, completed, blocked, failed, retrying "
            "(legacy files spell it 'in-progress')"
        ],
        id="status-with-underscore",
    ),
    pytest.param(
        BASE.replace("title: First", "title: First\n    risk: extreme"),
        {},
        ["manifest.yml:5: risk 'extreme' is not one of: low, medium, high"],
        id="risk-enum",
    ),
    pytest.param(
        BASE.replace("title: First", "title: First\n    owner: designer"),
        {},
        [
            "manifest.yml:5: owner 'designer' is not one of: "
            "pm, tester, developer, qa, devops, prompt, product"
        ],
        id="role-enum",
    ),
    pytest.param(
        BASE.replace("title: First", "title: First\n    colour: red"),
        {},
        [
            "manifest.yml:5: unknown key 'colour' in subtask (allowed: id, title, status, owner, "
            "risk, estimate_hours, depends_on, description)"
        ],
        id="unknown-key-manifest",
    ),
    pytest.param(
        BASE,
        with_log("attempts: 1\nnotes: remember\n"),
        [
            "logs/A.yml:2: unknown key 'notes' in log (allowed: requirements, blocked_reason, "
            "attempts, history)"
        ],
        id="unknown-key-log",
    ),
    pytest.param(
        BASE.replace("    title: First\n", ""),
        {},
        ["manifest.yml:3: subtask is missing required key 'title'"],
        id="missing-required-key",
    ),
    pytest.param(
        BASE.replace("version: 1\n", ""),
        {},
        ["manifest.yml:1: the manifest is missing required key 'version'"],
        id="missing-version",
    ),
    pytest.param(
        BASE.replace("version: 1", "version: 2"),
        {},
        ["manifest.yml:1: version 2 is not supported; this importer reads version 1"],
        id="unsupported-version",
    ),
    pytest.param(
        BASE.replace("title: First", "title: First\n    title: Again"),
        {},
        ["manifest.yml:5: duplicate key 'title' (first on line 4)"],
        id="duplicate-key",
    ),
    pytest.param(
        BASE.replace("id: B", "id: A"),
        {},
        ["manifest.yml:6: duplicate id 'A' (first defined on line 3)"],
        id="duplicate-id",
    ),
    pytest.param(
        BASE.replace("depends_on: [A]", "depends_on: [A, Z]"),
        {},
        ["manifest.yml:9: depends on unknown id 'Z'"],
        id="dangling-dependency",
    ),
    pytest.param(
        BASE.replace("title: First", "title: First\n    depends_on:\n      - B"),
        {},
        ["manifest.yml:11: dependency cycle: A → B → A"],
        id="dependency-cycle",
    ),
    pytest.param(
        BASE.replace("depends_on: [A]", "depends_on: [B]"),
        {},
        ["manifest.yml:9: dependency cycle: B → B"],
        id="self-dependency",
    ),
    pytest.param(
        BASE.replace("id: B", "id: 'B C'"),
        {},
        [
            "manifest.yml:6: id 'B C' is not a valid id: 1-60 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        ],
        id="invalid-id",
    ),
    pytest.param(
        BASE,
        {"Z": "attempts: 1\n"},
        ["logs/Z.yml:1: log file for unknown id 'Z': no subtask with that id in the manifest"],
        id="log-for-unknown-id",
    ),
    pytest.param(
        BASE,
        with_log("history:\n  - at: last tuesday\n    actor: devon\n    message: tried\n"),
        ["logs/A.yml:2: at 'last tuesday' is not an ISO 8601 datetime like 2024-03-01T09:30:00Z"],
        id="datetime-unreadable",
    ),
    pytest.param(
        BASE,
        with_log("history:\n  - at: 2024-02-30T10:00:00Z\n    actor: devon\n    message: tried\n"),
        [
            "logs/A.yml:2: at '2024-02-30T10:00:00Z' is not an ISO 8601 datetime like "
            "2024-03-01T09:30:00Z"
        ],
        id="datetime-impossible",
    ),
    pytest.param(
        BASE,
        with_log("history:\n  - at: 2024-03-01T10:00:00\n    actor: devon\n    message: tried\n"),
        ["logs/A.yml:2: at '2024-03-01T10:00:00' has no time zone: add Z or an offset like +02:00"],
        id="datetime-without-time-zone",
    ),
    pytest.param(
        BASE,
        with_log("history:\n  - at: 2024-03-01\n    actor: devon\n    message: tried\n"),
        ["logs/A.yml:2: at '2024-03-01' is a date without a time of day"],
        id="date-without-time",
    ),
    pytest.param(
        None,
        {},
        ["manifest.yml: file not found"],
        id="manifest-missing",
    ),
]


@pytest.mark.parametrize(("manifest", "logs", "expected"), BAD_INPUTS)
def test_bad_input_is_refused_naming_file_and_line_and_imports_nothing(
    manifest, logs, expected, project, tmp_path
):
    # given
    root = write_tree(tmp_path / "legacy", manifest, logs)
    # when
    problems = refused_problems(root, project)
    # then
    assert problems == expected
    assert not Subtask.objects.exists()
    assert not Event.objects.exists()


def test_every_problem_in_every_file_is_reported_at_once(project, tmp_path):
    # given
    manifest = textwrap.dedent("""\
        version: 1
        subtasks:
          - id: A
            title: First
            status: done
            depends_on: [B]
          - id: B
            title: Second
            status: pending
            depends_on: [A, Z]
            priority: 1
        """)
    logs = {
        "A": "attempts: -1\nhistory:\n  - at: yesterday\n    message: x\n",
        "Q": "blocked_reason: [a list]\n",
    }
    root = write_tree(tmp_path / "legacy", manifest, logs)
    # when
    with pytest.raises(CommandError) as refused:
        import_yaml(root, project)
    # then
    agents = root / "Agents"
    assert str(refused.value) == "\n".join(
        [
            f"9 problems in {root}; nothing was imported:",
            f"{agents}/manifest.yml:5: status 'done' is not one of: pending, in-progress, "
            "testing, ready-for-review, completed, blocked, failed, retrying",
            f"{agents}/manifest.yml:10: depends on unknown id 'Z'",
            f"{agents}/manifest.yml:10: dependency cycle: A → B → A",
            f"{agents}/manifest.yml:11: unknown key 'priority' in subtask (allowed: id, title, "
            "status, owner, risk, estimate_hours, depends_on, description)",
            f"{agents}/logs/A.yml:1: attempts must be a whole number of 0 or more, "
            "got an integer (-1)",
            f"{agents}/logs/A.yml:3: history entry is missing required key 'actor'",
            f"{agents}/logs/A.yml:3: at 'yesterday' is not an ISO 8601 datetime like "
            "2024-03-01T09:30:00Z",
            f"{agents}/logs/Q.yml:1: log file for unknown id 'Q': no subtask with that id in "
            "the manifest",
            f"{agents}/logs/Q.yml:1: blocked_reason must be text, got a list",
        ]
    )
    assert not Subtask.objects.exists()
    assert not Event.objects.exists()
