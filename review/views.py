"""The review pages: change set with its diff viewer, threads, approvals; the git panel.

GET views render a page or one fragment; POST views call one service and return the
updated fragment, with a domain error shown in it rather than a bare status code.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotModified,
)
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import Action, Principal, can, visible_workspaces
from orchestration.errors import DomainError
from review import pages, selectors
from review.diffs import fragments
from review.diffs import render as diff_render
from review.models import Approval, ChangeSet, ReviewComment
from review.services import approvals, changesets, comments, merging
from review.tasks import merge_changeset

SYNC_MARGIN = timezone.timedelta(seconds=10)


def _principal(request: HttpRequest) -> Principal:
    return Principal(user=request.user)


def _changeset(request: HttpRequest, code) -> ChangeSet:
    changeset = selectors.changeset_for(_principal(request), code)
    if changeset is None:
        raise Http404("no such change set")
    return changeset


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _scope(request: HttpRequest, changeset: ChangeSet, *, files: bool = True) -> pages.Scope:
    # files=False: the view reads one file's entry (Scope.file_at), not the whole list,
    # which at 1,000 files would be most of a cached fragment's time.
    number = _number(request.GET.get("r"))
    revision = selectors.revision_of(changeset, number, with_files=files)
    if revision is None:
        raise Http404("no such revision")
    since_number = _number(request.GET.get("since"))
    since = None
    if since_number is not None:
        since = selectors.revision_of(changeset, since_number, with_files=files)
    if since is not None and since.number >= revision.number:
        since = None
    view = request.GET.get("view")
    return pages.Scope(changeset, revision, since, view if view in diff_render.VIEWS else "split")


@login_required
@require_GET
def changeset_page(request: HttpRequest, code) -> HttpResponse:
    changeset = _changeset(request, code)
    if not changeset.revisions.exists():
        raise Http404("the change set has no revision yet")
    scope = _scope(request, changeset)
    files = scope.files()
    shown_first = files and not pages.is_collapsed(files[0])
    first_body = pages.file_body(scope, 0, files[0], 0, request) if shown_first else ""
    context = {
        **_status_context(request, changeset),
        "scope": scope,
        "files": files,
        "tree_html": mark_safe(
            pages.file_tree_html(files, selectors.thread_counts(scope.revision))
        ),
        "sections_html": mark_safe(pages.file_sections_html(scope, files, first_body)),
        "totals": {
            "additions": sum(entry["additions"] for entry in files),
            "deletions": sum(entry["deletions"] for entry in files),
        },
        "revisions": list(changeset.revisions.order_by("number")),
        "outdated": [
            pages.with_bodies(t) for t in selectors.outdated_threads(changeset, scope.revision)
        ],
        "poll": _poll_context(changeset, scope),
        "can_comment": scope.can_comment_here
        and comments.may_comment(_principal(request), changeset),
    }
    return render(request, "review/changeset.html", context)


def _status_context(request: HttpRequest, changeset: ChangeSet, error: str = "") -> dict:
    principal = _principal(request)
    gate = approvals.current_gate(changeset)
    return {
        "changeset": changeset,
        "workspace": changeset.workspace,
        "gate": gate,
        "approvals": selectors.approvals_of(changeset),
        "blockers": merging.merge_blockers(changeset) if changeset.status != "merged" else [],
        "can_review": can(principal, Action.REVIEW, changeset),
        "error": error,
    }


def _poll_context(changeset: ChangeSet, scope: pages.Scope) -> dict:
    return {
        "token": selectors.live_token(changeset),
        "since": timezone.now().isoformat(),
        "query": scope.query(),
    }


@login_required
@require_GET
def file_fragment(request: HttpRequest, code) -> HttpResponse:
    changeset = _changeset(request, code)
    scope = _scope(request, changeset, files=False)
    index, chunk = _number(request.GET.get("i")), _number(request.GET.get("chunk")) or 0
    entry = scope.file_at(index) if index is not None else None
    if entry is None:
        raise Http404("no such file in this change set")
    etag = pages.etag_for(scope, index, chunk, changeset.comments_version)
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    response = HttpResponse(pages.file_body(scope, index, entry, chunk, request))
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # revalidate: threads may have changed
    return response


@login_required
@require_GET
def context_rows(request: HttpRequest, code) -> HttpResponse:
    changeset = _changeset(request, code)
    scope = _scope(request, changeset, files=False)
    index = _number(request.GET.get("i"))
    numbers = [_number(request.GET.get(k)) for k in ("o", "n", "c")]
    entry = scope.file_at(index) if index is not None else None
    if entry is None or None in numbers:
        raise Http404("no such lines")
    rows = fragments.context(
        scope.ref(), entry["path"], entry.get("old_path"), scope.view,
        old_start=numbers[0], new_start=numbers[1], count=min(numbers[2], 5000),
    )  # fmt: skip
    return HttpResponse("".join(html for html, _, _ in rows))


@login_required
@require_GET
def comment_form(request: HttpRequest, code) -> HttpResponse:
    changeset = _changeset(request, code)
    scope = _scope(request, changeset)
    context = {
        "scope": scope,
        "columns": scope.columns(),
        "path": request.GET.get("path", ""),
        "side": request.GET.get("side", "new"),
        "line": _number(request.GET.get("line")) or 1,
    }
    return render(request, "review/_comment_form.html", context)


@login_required
@require_POST
def comment_create(request: HttpRequest, code) -> HttpResponse:
    changeset = _changeset(request, code)
    scope = _scope(request, changeset)
    data = request.POST
    try:
        comment = comments.comment_add(
            changeset=changeset,
            principal=_principal(request),
            body=data.get("body", ""),
            path=data.get("path", ""),
            side=data.get("side", "new"),
            first_line=_number(data.get("first_line")) or 0,
            line_count=_number(data.get("line_count")) or 1,
            revision_number=scope.revision.number,
        )
    except DomainError as error:
        context = {
            "scope": scope,
            "columns": scope.columns(),
            "path": data.get("path", ""),
            "side": data.get("side", "new"),
            "line": _number(data.get("first_line")) or 1,
            "body": data.get("body", ""),
            "error": error.message,
        }
        # htmx swaps 4xx answers in too (base.html's responseHandling): the form comes back
        # with its reason and the status says what went wrong.
        return render(request, "review/_comment_form.html", context, status=error.status_code)
    fresh = selectors.thread_queryset().get(pk=comment.pk)
    return HttpResponse(pages.thread_row(fresh, scope, request))


def _thread_response(
    request, comment: ReviewComment, error: DomainError | None = None
) -> HttpResponse:
    changeset = comment.changeset
    scope = _scope(request, changeset)
    root = selectors.thread_queryset().get(pk=(comment.parent_id or comment.pk))
    return HttpResponse(
        pages.thread_row(root, scope, request, error=error.message if error else ""),
        status=error.status_code if error else 200,
    )


def _comment(request: HttpRequest, code) -> ReviewComment:
    comment = get_object_or_404(
        ReviewComment.objects.select_related("changeset"),
        code=code,
        changeset__workspace__in=visible_workspaces(_principal(request)),
    )
    return comment


@login_required
@require_POST
def comment_reply(request: HttpRequest, code) -> HttpResponse:
    comment = _comment(request, code)
    error = None
    try:
        comments.comment_add(
            changeset=comment.changeset,
            principal=_principal(request),
            body=request.POST.get("body", ""),
            parent=comment,
        )
    except DomainError as exc:
        error = exc
    return _thread_response(request, comment, error)


@login_required
@require_POST
def comment_transition(request: HttpRequest, code, name: str) -> HttpResponse:
    comment = _comment(request, code)
    error = None
    try:
        comments.comment_transition(comment=comment, name=name, principal=_principal(request))
    except DomainError as exc:
        error = exc
    return _thread_response(request, comment, error)


@login_required
@require_POST
def approval_decide(request: HttpRequest, code, decision: str) -> HttpResponse:
    approval = get_object_or_404(
        Approval.objects.select_related("changeset", "feature"),
        code=code,
        workspace__in=visible_workspaces(_principal(request)),
    )
    error, status = "", 200
    try:
        approvals.approval_decide(
            approval=approval,
            principal=_principal(request),
            decision=decision,
            note=request.POST.get("note", ""),
        )
    except DomainError as exc:
        error, status = exc.message, exc.status_code
    changeset = approval.changeset or ChangeSet.objects.filter(feature=approval.feature).first()
    if changeset is None:
        body = format_html('<p class="error">{}</p>', error) if error else "decided"
        return HttpResponse(body, status=status)
    changeset.refresh_from_db()
    context = _status_context(request, changeset, error)
    return render(request, "review/_status.html", context, status=status)


@login_required
@require_POST
def changeset_merge(request: HttpRequest, code) -> HttpResponse:
    """Try the merge again now (after fixing what it waited for)."""
    changeset = _changeset(request, code)
    error, status = "", 200
    if not can(_principal(request), Action.REVIEW, changeset):
        error, status = "only reviewers and admins can start a merge", 403
    else:
        merge_changeset.delay(changeset.pk)
    changeset.refresh_from_db()
    context = _status_context(request, changeset, error)
    return render(request, "review/_status.html", context, status=status)


@login_required
@require_POST
def changeset_refresh(request: HttpRequest, code) -> HttpResponse:
    changeset = _changeset(request, code)
    principal = _principal(request)
    if not (can(principal, Action.EDIT, changeset) or can(principal, Action.REVIEW, changeset)):
        return HttpResponseForbidden("only authors, reviewers and admins can refresh a change set")
    changesets.changeset_refresh(feature=changeset.feature, actor=principal.label)
    response = HttpResponse(status=204)
    response["HX-Refresh"] = "true"
    return response


@login_required
@require_GET
def poll(request: HttpRequest, code) -> HttpResponse:
    """The page's re-sync, asked for when the websocket says the change set changed, after
    a reconnect, and now and then while the websocket is down: 204 while nothing changed
    (one cheap query); otherwise the status box and the bodies of files whose threads
    changed, out of band."""
    changeset = _changeset(request, code)
    token = selectors.live_token(changeset)
    if token == request.GET.get("v"):
        return HttpResponse(status=204)
    scope = _scope(request, changeset)
    # Margin: a comment saved just before the last poll may have committed just after it.
    since = (parse_datetime(request.GET.get("t", "")) or timezone.now()) - SYNC_MARGIN
    status = {**_status_context(request, changeset), "oob": True}
    html = [render_to_string("review/_status.html", status, request=request)]
    if not scope.is_interdiff:
        html.extend(_changed_bodies(request, scope, since))
    poller = {"changeset": changeset, "poll": _poll_context(changeset, scope)}
    html.append(render_to_string("review/_poll.html", poller, request=request))
    return HttpResponse("".join(html))


def _changed_bodies(request, scope: pages.Scope, since) -> list[str]:
    paths = set(
        ReviewComment.objects.filter(changeset=scope.changeset, updated_at__gte=since).values_list(
            "path", flat=True
        )
    )
    bodies = []
    for index, entry in enumerate(scope.files()):
        if entry["path"] in paths:
            body = pages.file_body(scope, index, entry, 0, request)
            bodies.append(body.replace('class="rv-body"', 'class="rv-body" hx-swap-oob="true"', 1))
    return bodies


@login_required
@require_GET
def git_panel(request: HttpRequest, code) -> HttpResponse:
    workspace = visible_workspaces(_principal(request)).filter(code=code).first()
    if workspace is None:
        raise Http404("no such workspace")
    context = {
        "workspace": workspace,
        "panels": selectors.git_panel(workspace),
        "pending": selectors.pending_approvals(workspace),
        "changesets": ChangeSet.objects.filter(workspace=workspace)
        .select_related("feature", "project")
        .order_by("-updated_at")[:30],
    }
    return render(request, "review/git.html", context)
