"""Every write of the orchestration domain goes through these modules.

Views, the API, admin actions, Celery tasks and management commands call them; none of
them changes a state field or writes an Event by itself.
"""
