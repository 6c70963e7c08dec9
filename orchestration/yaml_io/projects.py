"""Finding the project a command names, by UUID code or by `workspace-slug/project-slug`."""

from __future__ import annotations

import uuid

from orchestration.errors import InvalidInput
from orchestration.models import Project


def project_from_reference(reference: str) -> Project:
    """Return the project named by its code or its slugs; refuse anything else clearly."""
    try:
        projects = Project.objects.filter(code=uuid.UUID(reference))
    except ValueError:
        workspace_slug, _, project_slug = reference.partition("/")
        if not workspace_slug or not project_slug:
            raise InvalidInput(
                f"{reference!r} is neither a project code (UUID) nor workspace-slug/project-slug"
            ) from None
        projects = Project.objects.filter(workspace__slug=workspace_slug, slug=project_slug)
    project = projects.select_related("workspace").first()
    if project is None:
        raise InvalidInput(f"no project {reference!r}")
    return project
