from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Review"

    def ready(self) -> None:
        from orchestration.extensions import Review, register_review
        from review.briefing import open_comments_section
        from review.services.approvals import plan_gate_open, review_open, subtask_decide

        register_review(
            Review(
                open=review_open,
                plan_gate_open=plan_gate_open,
                comments_for_briefing=open_comments_section,
                decide_transition=subtask_decide,
            )
        )
