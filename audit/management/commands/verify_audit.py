from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Workspace
from audit.verify import chains_in_log, verify_chain


class Command(BaseCommand):
    help = "Walk the hash-chained audit log and report the first bad entry of each chain."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workspace", help="check only this workspace's chain (its slug)")

    def handle(self, *args, workspace: str | None = None, **options) -> None:
        if workspace:
            ws = Workspace.objects.filter(slug=workspace).first()
            if ws is None:
                raise CommandError(f"no workspace with slug {workspace!r}")
            chains = [ws.pk]
        else:
            chains = chains_in_log()
        broken = 0
        for chain in chains:
            report = verify_chain(chain)
            label = "global" if chain is None else f"workspace {chain}"
            if report.intact:
                self.stdout.write(f"OK {label}: {report.entries} entries")
            else:
                broken += 1
                self.stderr.write(f"TAMPERED {report.problem}")
        if broken:
            raise CommandError(f"{broken} of {len(chains)} audit chain(s) failed verification")
        self.stdout.write(self.style.SUCCESS(f"{len(chains)} audit chain(s) intact"))
