from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitops.gitrepo import init_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on `main` with one commit, its main checkout on `main`."""
    return init_repo(tmp_path / "repo")
