"""Writing a project's subtasks back as the legacy Agents/ tree, readable and re-importable.

The output is deterministic (fixed key order, subtasks in creation order, no timestamps of
the export itself), so exporting unchanged data twice gives identical files and a tree kept
in git shows only real changes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from orchestration.errors import Conflict, InvalidInput
from orchestration.models import Event, EventKind, Project, SubtaskDependency
from orchestration.yaml_io.importer import SOURCE_HISTORY, managed_subtasks
from orchestration.yaml_io.loader import ID_PATTERN
from orchestration.yaml_io.located import TIMESTAMP_TAG
from orchestration.yaml_io.tree import (
    FORMAT_VERSION,
    LOG_SUFFIX,
    STATUS_TO_LEGACY,
    HistoryEntry,
    LegacySubtask,
    LegacyTree,
    logs_path,
    manifest_path,
)

HEADER = "# CodeMaestro legacy {what} (format: docs/yaml-format.md)\n"


class TargetNotEmpty(Conflict):
    code = "target_not_empty"


class OutsideTheTree(InvalidInput):
    code = "dependency_outside_tree"


def tree_from_project(project: Project) -> LegacyTree:
    """Read the subtasks an import manages, with dependencies and legacy history, as a tree."""
    subtasks = list(managed_subtasks(project).order_by("id"))
    depends_on: dict[int, list[str]] = {}
    edges = SubtaskDependency.objects.filter(subtask__in=subtasks).order_by("id")
    outside = []
    for subtask_id, key, feature_id in edges.values_list(
        "subtask_id", "depends_on__key", "depends_on__feature_id"
    ):
        depends_on.setdefault(subtask_id, []).append(key)
        if feature_id is not None:
            outside.append(key)
    # Such an edge would name an id the manifest lacks; leaving it out instead would make
    # the next import of this tree remove it. Neither is acceptable silently.
    if outside:
        raise OutsideTheTree(
            "some subtasks depend on subtasks of a feature, which the legacy layout cannot "
            f"hold: {', '.join(sorted(set(outside)))}"
        )
    # Only the imported legacy entries (CodeMaestro's own events would turn into legacy
    # history on the next import), in the order they were stored, which is the order of
    # the log file: legacy logs are not always chronological, and a round trip keeps them.
    history: dict[int, list[HistoryEntry]] = {}
    legacy_events = Event.objects.filter(
        project=project, kind=EventKind.IMPORT, data__source=SOURCE_HISTORY
    ).order_by("id")
    for subtask_id, data in legacy_events.values_list("subtask_id", "data"):
        entry = HistoryEntry(datetime.fromisoformat(data["at"]), data["actor"], data["message"])
        history.setdefault(subtask_id, []).append(entry)
    return LegacyTree(
        subtasks=tuple(
            LegacySubtask(
                key=subtask.key,
                title=subtask.title,
                status=subtask.status,
                owner_role=subtask.owner_role,
                risk=subtask.risk,
                depends_on=tuple(depends_on.get(subtask.pk, ())),
                estimate_hours=subtask.estimate_hours,
                description=subtask.description,
                requirements_developer=subtask.requirements_developer,
                requirements_tester=subtask.requirements_tester,
                blocked_reason=subtask.blocked_reason,
                attempts=subtask.attempts,
                history=tuple(history.get(subtask.pk, ())),
            )
            # Creation order is the manifest order of an imported tree.
            for subtask in subtasks
        )
    )


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as people write YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line requirements read best as literal blocks; PyYAML falls back to a quoted
    # scalar by itself when a block cannot hold the text exactly (e.g. trailing spaces).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_datetime(dumper: yaml.SafeDumper, value: datetime) -> yaml.ScalarNode:
    text = value.isoformat()
    if text.endswith("+00:00"):
        text = text.removesuffix("+00:00") + "Z"
    return dumper.represent_scalar(TIMESTAMP_TAG, text)


_Dumper.add_representer(str, _represent_text)
_Dumper.add_representer(datetime, _represent_datetime)


def _hours(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def manifest_document(tree: LegacyTree) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "subtasks": [
            {
                "id": subtask.key,
                "title": subtask.title,
                "status": STATUS_TO_LEGACY[subtask.status],
                "owner": subtask.owner_role,
                "risk": subtask.risk,
                "estimate_hours": _hours(subtask.estimate_hours),
                "depends_on": list(subtask.depends_on),
                "description": subtask.description,
            }
            for subtask in tree.subtasks
        ],
    }


def log_document(subtask: LegacySubtask) -> dict[str, Any]:
    return {
        "requirements": {
            "developer": subtask.requirements_developer,
            "tester": subtask.requirements_tester,
        },
        "blocked_reason": subtask.blocked_reason,
        "attempts": subtask.attempts,
        "history": [
            {"at": entry.at, "actor": entry.actor, "message": entry.message}
            for entry in subtask.history
        ],
    }


def dump(document: dict[str, Any], what: str) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    return HEADER.format(what=what) + body


def _check_target(root: Path, tree: LegacyTree, *, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"{root} is not a directory")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise TargetNotEmpty(f"{root} is not empty; refusing to overwrite it (use --force)")
    # Keys made in CodeMaestro need not be file-name safe; the legacy layout requires it.
    unfit = [s.key for s in tree.subtasks if not ID_PATTERN.fullmatch(s.key)]
    if unfit:
        raise InvalidInput(f"these subtask keys cannot be legacy ids: {', '.join(unfit)}")


def tree_write(tree: LegacyTree, root: Path, *, force: bool = False) -> list[Path]:
    """Write root/Agents/manifest.yml and one log per subtask; return the files written."""
    _check_target(root, tree, force=force)
    logs = logs_path(root)
    logs.mkdir(parents=True, exist_ok=True)
    # Logs of subtasks a forced overwrite no longer lists would come back as unknown ids.
    for stale in logs.glob(f"*{LOG_SUFFIX}"):
        stale.unlink()
    manifest = manifest_path(root)
    manifest.write_text(dump(manifest_document(tree), "subtask manifest"), encoding="utf-8")
    written = [manifest]
    for subtask in tree.subtasks:
        path = logs / f"{subtask.key}{LOG_SUFFIX}"
        path.write_text(dump(log_document(subtask), f"log of {subtask.key}"), encoding="utf-8")
        written.append(path)
    return written
