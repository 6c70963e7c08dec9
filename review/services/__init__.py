"""Review services (writes): change sets, comments, approvals and merging.

`plan_gate_open` and `review_open` are what the lifecycle's handoffs call.
"""

from review.services.approvals import plan_gate_open, review_open

__all__ = ["plan_gate_open", "review_open"]
