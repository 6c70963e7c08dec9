"""manage.py import_yaml DIR --project REF: load a legacy Agents/ tree into a project."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.errors import DomainError
from orchestration.yaml_io.importer import tree_import
from orchestration.yaml_io.loader import TreeInvalid, load_tree
from orchestration.yaml_io.projects import project_from_reference


class Command(BaseCommand):
    help = (
        "Import subtasks, dependencies and history from DIR/Agents/manifest.yml and "
        "DIR/Agents/logs/<id>.yml (see docs/yaml-format.md). All or nothing; re-running "
        "with the same files changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="folder holding Agents/")
        parser.add_argument(
            "--project", required=True, help="project code (UUID) or workspace-slug/project-slug"
        )

    def handle(self, *args, directory: Path, project: str, **options) -> None:
        try:
            target = project_from_reference(project)
            tree = load_tree(directory)
            summary = tree_import(project=target, tree=tree)
        except TreeInvalid as exc:
            count = len(exc.problems)
            raise CommandError(
                f"{count} problem{'s' if count != 1 else ''} in {directory}; nothing was "
                f"imported:\n{exc}"
            ) from None
        except DomainError as exc:
            raise CommandError(f"{exc.message}; nothing was imported") from None
        outcome = (
            summary.describe()
            if summary.changed
            else f"nothing changed ({len(summary.unchanged)} subtasks already up to date)"
        )
        self.stdout.write(
            f"Imported {directory} into {target.workspace.slug}/{target.slug}: {outcome}"
        )
