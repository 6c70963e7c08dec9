from django.urls import path

from review import views

app_name = "review"

C = "c/<uuid:code>/"

urlpatterns = [
    path("w/<uuid:code>/git/", views.git_panel, name="git"),
    path(C, views.changeset_page, name="changeset"),
    path(C + "file/", views.file_fragment, name="file"),
    path(C + "context/", views.context_rows, name="context"),
    path(C + "comment-form/", views.comment_form, name="comment-form"),
    path(C + "comments/", views.comment_create, name="comment-create"),
    path(C + "poll/", views.poll, name="poll"),
    path(C + "merge/", views.changeset_merge, name="merge"),
    path(C + "refresh/", views.changeset_refresh, name="refresh"),
    path("comments/<uuid:code>/reply/", views.comment_reply, name="comment-reply"),
    path("comments/<uuid:code>/<slug:name>/", views.comment_transition, name="comment-transition"),
    path("approvals/<uuid:code>/<slug:decision>/", views.approval_decide, name="approval-decide"),
]
