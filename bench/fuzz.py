"""The long API fuzzing run: the CI fuzz test with many more examples and the coverage phase.

    bin/bench fuzz [--examples 100] [--no-coverage] [pytest args...]

Runs tests/security/test_fuzz_api.py (schemathesis over our OpenAPI schema, as workspace
A's admin, with workspace B's objects as the cross-tenant probe) against the bench
database: 0 server errors, 0 schema violations, 0 cross-workspace successes. The CI run
uses 6 examples per operation and no coverage phase; this one finds what those miss.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path, where a benchmark named like
# a standard module (say `secrets`, which Django imports) would stand in for it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per operation")
    parser.add_argument("--no-coverage", action="store_true", help="skip the coverage phase")
    options, extra = parser.parse_known_args()
    os.environ["FUZZ_EXAMPLES"] = str(options.examples)
    os.environ["FUZZ_COVERAGE"] = "" if options.no_coverage else "1"
    os.chdir(ROOT)
    import pytest

    started = time.monotonic()
    status = pytest.main(
        ["-q", "-p", "no:logging", "tests/security/test_fuzz_api.py", "--create-db", *extra]
    )
    print(f"fuzzing: {options.examples} examples per operation, "
          f"{time.monotonic() - started:.0f} s, exit {int(status)}")  # fmt: skip
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
