from django.urls import path

from dashboard import views

app_name = "dashboard"

W = "w/<uuid:code>/"

urlpatterns = [
    path("", views.home, name="home"),
    path(W, views.room, name="workspace"),
    path(W + "live/", views.live_sync, name="live"),
    path(W + "features/new/", views.feature_new, name="feature-new"),
    path(W + "features/<uuid:feature>/", views.feature, name="feature"),
    path(W + "states/", views.states, name="states"),
    path(W + "board/", views.board, name="board"),
    path(W + "subtasks/<uuid:subtask>/", views.subtask, name="subtask"),
    path(
        W + "subtasks/<uuid:subtask>/transitions/<slug:name>/",
        views.subtask_transition,
        name="subtask-transition",
    ),
    path(W + "runs/<uuid:run>/", views.run, name="run"),
    path(W + "tests/", views.tests, name="tests"),
    path(W + "metrics/", views.metrics_page, name="metrics"),
    path(W + "search/", views.search, name="search"),
    path("healthz", views.healthz, name="healthz"),
]
