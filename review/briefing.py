"""The review's part of a developer briefing: the open threads of the feature's change set."""

from __future__ import annotations

from review.models import CommentState, ReviewComment

MAX_THREADS = 50
MAX_BODY = 1_500


def open_comments_section(feature_id: int) -> str:
    """A briefing section listing every open thread with its replies; "" when none."""
    threads = list(
        ReviewComment.objects.filter(
            changeset__feature_id=feature_id, parent__isnull=True, state=CommentState.OPEN
        )
        .select_related("revision")
        .prefetch_related("replies")
        .order_by("path", "first_line", "id")[:MAX_THREADS]
    )
    if not threads:
        return ""
    lines = [
        "## Open review comments",
        "A reviewer asked for these changes. Address every one; reply on a thread to say "
        "what you changed (or why not).",
    ]
    for thread in threads:
        where = f"{thread.path} line {thread.first_line}"
        if thread.line_count > 1:
            where = f"{thread.path} lines {thread.first_line}-{thread.last_line}"
        side = "old version" if thread.side == "old" else "new version"
        lines.append(
            f"\n### [{str(thread.code)[:8]}] {where} ({side}, revision "
            f"{thread.revision.number}) — {thread.author_label}\n{thread.body[:MAX_BODY]}"
        )
        for reply in thread.replies.all():
            lines.append(f"> {reply.author_label}: {reply.body[:MAX_BODY]}")
    return "\n".join(lines)
