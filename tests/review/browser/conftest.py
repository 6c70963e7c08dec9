"""Browser tests of the review: Playwright driving Debian's chromium against live_server.

Marked `browser`: bin/test runs them in a pytest run of their own, after the rest
(Playwright's sync API leaves an asyncio loop running in the main thread; STACK.md trap 4).
"""

from __future__ import annotations

from tests.browser import artifacts, browser_type_launch_args  # noqa: F401 (fixtures)
