from django.urls import path

from agents import api

app_name = "agents"

urlpatterns = [
    path("briefing/<uuid:subtask>", api.briefing, name="briefing"),
    path("subtasks/<uuid:subtask>/questions", api.questions, name="questions"),
    path("subtasks/<uuid:subtask>/review-comments", api.review_comments, name="review-comments"),
    path("questions/<uuid:question>/answer", api.answer, name="answer"),
    path("runs", api.runs, name="runs"),
    path("runs/claim", api.claim, name="claim"),
    path("runs/<uuid:run>/heartbeat", api.run_heartbeat, name="run-heartbeat"),
    path("runs/<uuid:run>/briefing", api.run_briefing, name="run-briefing"),
    path("runs/<uuid:run>/context", api.run_context, name="run-context"),
    path("runs/<uuid:run>/patch", api.run_patch, name="run-patch"),
    path("runs/<uuid:run>/result", api.run_result, name="run-result"),
    path("runs/<uuid:run>/release", api.run_release, name="run-release"),
]
