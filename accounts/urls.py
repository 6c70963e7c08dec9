from django.urls import path

from accounts import views

app_name = "accounts"

A = "w/<uuid:code>/access/"

urlpatterns = [
    path(A, views.access, name="access"),
    path(A + "invites/", views.invite_create, name="invite-create"),
    path(A + "invites/<uuid:invite>/revoke/", views.invite_revoke, name="invite-revoke"),
    path(A + "members/<int:member>/role/", views.member_role, name="member-role"),
    path(A + "members/<int:member>/remove/", views.member_remove, name="member-remove"),
    path(A + "project-roles/", views.project_role, name="project-role"),
    path(A + "tokens/", views.token_create, name="token-create"),
    path(A + "tokens/<uuid:token>/revoke/", views.token_revoke, name="token-revoke"),
    path("workspaces/switch/", views.switcher, name="switcher"),
    path("invites/<str:token>/", views.invite_accept, name="invite"),
]
