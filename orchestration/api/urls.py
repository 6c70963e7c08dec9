from rest_framework.routers import DefaultRouter

from orchestration.api import views

router = DefaultRouter()
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register("projects", views.ProjectViewSet, basename="project")
router.register("features", views.FeatureViewSet, basename="feature")
router.register("subtasks", views.SubtaskViewSet, basename="subtask")
router.register("dependencies", views.DependencyViewSet, basename="dependency")
router.register("events", views.EventViewSet, basename="event")
router.register("runs", views.RunViewSet, basename="run")
router.register("agent-profiles", views.AgentProfileViewSet, basename="agent-profile")
router.register("test-runs", views.TestRunViewSet, basename="test-run")
router.register("prompt-proposals", views.PromptProposalViewSet, basename="prompt-proposal")

urlpatterns = router.urls
