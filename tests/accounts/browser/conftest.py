from __future__ import annotations

from tests.browser import artifacts, browser_type_launch_args  # noqa: F401 (fixtures)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
