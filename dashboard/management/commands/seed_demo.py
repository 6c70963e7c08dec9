from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestration.demo.seed import DemoSeedError, demo_seed


class Command(BaseCommand):
    help = "Create (or complete) the demo workspace, its textkit repository and the demo login."

    def handle(self, *args, **options) -> None:
        try:
            info = demo_seed(data_dir=settings.DATA_DIR)
        except DemoSeedError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"{info.workspace.name} ready: project {info.project.name} at {info.repo_path}\n"
            f"Log in as {info.username} with password {info.password} "
            f"(saved in {info.credentials_path})"
        )
