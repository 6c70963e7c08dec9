"""manage.py export_yaml DIR --project REF: write a project as a legacy Agents/ tree."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.errors import DomainError
from orchestration.yaml_io.exporter import tree_from_project, tree_write
from orchestration.yaml_io.projects import project_from_reference


class Command(BaseCommand):
    help = (
        "Write the project's subtasks to DIR/Agents/manifest.yml and DIR/Agents/logs/<id>.yml "
        "(see docs/yaml-format.md); import_yaml reads them back unchanged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="folder to write Agents/ into")
        parser.add_argument(
            "--project", required=True, help="project code (UUID) or workspace-slug/project-slug"
        )
        parser.add_argument(
            "--force", action="store_true", help="write into a folder that is not empty"
        )

    def handle(self, *args, directory: Path, project: str, force: bool, **options) -> None:
        try:
            source = project_from_reference(project)
            written = tree_write(tree_from_project(source), directory, force=force)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Exported {source.workspace.slug}/{source.slug}: {len(written)} files")
