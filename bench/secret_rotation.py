"""Key rotation on PostgreSQL: re-encrypt 10,000 secrets with a new key, then read them all.

    bin/bench secret_rotation [--secrets N] [--workspaces N] [--batch-size N] [--strict]

Setup (not timed): the database (its name must say "bench") is rebuilt and migrated, and
N secrets are written under an old key A across the workspaces. Timed: `rotate_secrets`'
service with keys "B,A" (every secret re-encrypted), the same again (nothing left to do),
and decrypting every secret with key B alone. Target: the rotation under 10 s.
Exit status: 1 if any secret does not decrypt to its value; 2 on a missed target with
--strict.
"""

# This file shares its name with the standard library's `secrets`, which Django imports:
# the script's own folder must not shadow it.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from cryptography.fernet import Fernet  # noqa: E402

from bench.briefing import DEFAULT_DATABASE_URL, rebuild_database  # noqa: E402

TARGET_SECONDS = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--strict", action="store_true", help="exit 2 on a missed target")
    return parser.parse_args(argv)


def use_keys(*keys: str) -> None:
    from accounts import crypto

    os.environ["CODEMAESTRO_SECRET_KEYS"] = ",".join(keys)
    crypto.reset_cipher()


def expected_value(n: int) -> str:
    return f"bench-secret-value-{n:06d}-" + "x" * 24


def populate(count: int, workspaces: int) -> None:
    from accounts.crypto import encrypt
    from accounts.models import Environment, Secret, Workspace

    spaces = Workspace.objects.bulk_create(
        Workspace(name=f"Bench {n}", slug=f"bench-{n}") for n in range(workspaces)
    )
    environments = list(Environment.values)
    rows = []
    for n in range(count):
        rows.append(
            Secret(
                workspace=spaces[n % workspaces],
                name=f"SECRET_{n:06d}",
                environment=environments[n % len(environments)],
                ciphertext=encrypt(expected_value(n)),
            )
        )
    Secret.objects.bulk_create(rows, batch_size=2_000)


def check_all() -> tuple[int, float]:
    """How many secrets do not decrypt to their value with the newest key alone."""
    from accounts.crypto import SecretUnreadable, decrypt
    from accounts.models import Secret

    started = time.perf_counter()
    wrong = 0
    rows = Secret.objects.order_by("pk").values_list("name", "ciphertext")
    for name, ciphertext in rows.iterator(chunk_size=2_000):
        try:
            wrong += decrypt(ciphertext) != expected_value(int(name.split("_")[1]))
        except SecretUnreadable:
            wrong += 1
    return wrong, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    rebuild_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from accounts.secrets import secrets_rotate

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    use_keys(old)
    populate(args.secrets, args.workspaces)

    use_keys(new, old)
    rows = []
    for label in ("rotate (every secret)", "rotate again (idempotent)"):
        started = time.perf_counter()
        report = secrets_rotate(batch_size=args.batch_size, actor="system:bench")
        elapsed = time.perf_counter() - started
        rows.append((label, report.total, report.rotated, elapsed))
    use_keys(new)
    wrong, check_seconds = check_all()
    rows.append(("decrypt all with the new key only", args.secrets, 0, check_seconds))

    print(f"{args.secrets} secrets in {args.workspaces} workspaces, batches of {args.batch_size}")
    print(f"{'phase':<36}{'secrets':>9}{'rotated':>9}{'seconds':>9}{'per s':>10}")
    for label, total, rotated, seconds in rows:
        print(f"{label:<36}{total:>9}{rotated:>9}{seconds:>9.2f}{total / seconds:>10.0f}")
    rotation = rows[0][3]
    met = rotation < TARGET_SECONDS and rows[0][2] == args.secrets and rows[1][2] == 0
    verdict = "MET" if met else "MISSED"
    print(f"rotation {rotation:.2f} s   target < {TARGET_SECONDS:.0f} s   {verdict}")
    print(f"secrets not decrypting to their value: {wrong}   {'OK' if not wrong else 'FAILED'}")
    if wrong:
        return 1
    if args.strict and not met:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
