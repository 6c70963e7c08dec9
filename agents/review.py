"""Review comments as the agents see them.

The review app (change sets, inline comments) is not built yet; until it is, a subtask has
no comments. This is the one place to point at it: the briefing, the API and the MCP tool
all read comments through `unresolved_comments`.
"""

from __future__ import annotations

from orchestration.models import Subtask


def unresolved_comments(subtask: Subtask) -> list[dict]:
    """Open review comments on the subtask's changes, oldest first.

    Each is `{"id", "path", "line", "side", "author", "body", "createdAt"}`; `path` and
    `line` also steer the briefing's choice of relevant files.
    """
    return []
