"""What every browser test needs: Debian's chromium under Playwright, and a folder for
screenshots. Conftests import the fixtures from here.

Playwright's sync API keeps an asyncio loop running in the main thread for the rest of the
session (STACK.md trap 4): Django then refuses ORM calls and async_to_sync. Browser tests
are marked `browser`, and bin/test runs them in a pytest run of their own, last.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags that work here: no sandbox as root, and no background traffic to the
# closed network (STACK.md).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    # From here on Playwright's loop runs in this thread; the ORM must still work for the
    # test's own setup and assertions.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
