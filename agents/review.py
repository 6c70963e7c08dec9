"""Review comments as the agents see them: the open threads of the subtask's change set.

The briefing, the API and the MCP tool all read comments through `unresolved_comments`.
"""

from __future__ import annotations

from orchestration.models import Subtask
from review.models import CommentState, ReviewComment


def unresolved_comments(subtask: Subtask) -> list[dict]:
    """Open review comments on the subtask's feature change set, oldest first, with replies.

    Each is `{"id", "path", "line", "side", "author", "body", "createdAt", "replies"}`;
    `path` and `line` also steer the briefing's choice of relevant files.
    """
    if subtask.feature_id is None:
        return []
    threads = (
        ReviewComment.objects.filter(
            changeset__feature_id=subtask.feature_id, parent=None, state=CommentState.OPEN
        )
        .prefetch_related("replies")
        .order_by("created_at", "id")
    )
    return [
        {
            "id": str(comment.code),
            "path": comment.path,
            "line": comment.first_line,
            "side": comment.side,
            "author": comment.author_label,
            "body": comment.body,
            "createdAt": comment.created_at.isoformat(),
            "replies": [
                {"author": reply.author_label, "body": reply.body}
                for reply in sorted(comment.replies.all(), key=lambda r: (r.created_at, r.pk))
            ],
        }
        for comment in threads
    ]
