from tests.browser import artifacts, browser_type_launch_args  # noqa: F401 (fixtures)
