from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.crypto import registered_rotations
from accounts.secrets import ROTATE_BATCH_SIZE, secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the newest key in CODEMAESTRO_SECRET_KEYS "
        "(keep the old keys listed after it until this has run)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=ROTATE_BATCH_SIZE,
            help=f"secrets per transaction (default {ROTATE_BATCH_SIZE})",
        )

    def handle(self, *args, batch_size: int, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        report = secrets_rotate(batch_size=batch_size, actor="system:rotate_secrets")
        self.stdout.write(
            f"{report.total} secrets: {report.rotated} re-encrypted, "
            f"{report.current} already under the newest key, "
            f"{len(report.unreadable)} unreadable"
        )
        unreadable = list(report.unreadable)
        for label, rotate_all in registered_rotations().items():
            other = rotate_all()
            self.stdout.write(
                f"{other.total} {label}: {other.rotated} re-encrypted, "
                f"{len(other.unreadable)} unreadable"
            )
            unreadable += other.unreadable
        if unreadable:
            for label in unreadable:
                self.stderr.write(f"UNREADABLE {label}: left as it was")
            raise CommandError(
                f"{len(unreadable)} secret(s) cannot be decrypted with any configured "
                "key; add the key they were written with to CODEMAESTRO_SECRET_KEYS and run "
                "rotate_secrets again"
            )
        self.stdout.write(self.style.SUCCESS("every secret is encrypted with the newest key"))
