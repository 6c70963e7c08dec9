from rest_framework.routers import SimpleRouter

from review import api

router = SimpleRouter()
router.register("changesets", api.ChangeSetViewSet, basename="changeset")
router.register("review-comments", api.CommentViewSet, basename="review-comment")
router.register("approvals", api.ApprovalViewSet, basename="approval")

urlpatterns = router.urls
