"""Domain errors: each maps to one clear message and one HTTP status in the API."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(DomainError):
    code = "invalid"


class NotAllowed(DomainError):
    status_code = 403
    code = "forbidden"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class TransitionRefused(Conflict):
    code = "transition_refused"


class LeaseLost(Conflict):
    """The caller no longer holds the run: its lease expired, or it was never theirs."""

    code = "lease_lost"


class DependencyRefused(InvalidInput):
    code = "dependency_refused"
