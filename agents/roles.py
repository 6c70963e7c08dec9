"""The roles beyond Orion, Tara and Devon, as agent profiles with their own prompt templates.

Each further role comes with the rule for when it gets work; the rules are stated here as
data (`handoff`) so the settings pages and the briefing can show them. They are seeded as
*external* profiles: an agent claims their runs through the API, MCP or
`codemaestro-agent`.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import AgentRole, Workspace
from orchestration.models import AgentProfile, Executor
from orchestration.services.briefings import ROLE_INTRO


@dataclass(frozen=True)
class RoleSpec:
    role: str
    name: str
    prompt: str
    handoff: str


FURTHER_ROLES: tuple[RoleSpec, ...] = (
    RoleSpec(
        role=AgentRole.QA,
        name="QA/Breaker",
        prompt=(
            "You are the QA/Breaker. Devon's implementation passes Tara's tests; your job "
            "is to break it. Write adversarial tests only: edge cases, malformed input, "
            "boundaries, concurrency, the cases the requirements imply but the tests do "
            "not pin. Never change the implementation. A test you add that fails is a "
            "finding; keep it and say in one line what it shows."
        ),
        handoff="after Devon's tests pass, when the project enables QA/Breaker",
    ),
    RoleSpec(
        role=AgentRole.DEVOPS,
        name="DevOps",
        prompt=(
            "You are DevOps. You change build and delivery files only: Dockerfile, compose "
            "files, CI workflows, scripts under bin/. Keep images small and pinned, never "
            "put secrets in files, and explain in the result how to verify the change. "
            "Your changes are always high risk: a person approves them before they act "
            "and before they merge."
        ),
        handoff="subtasks owned by devops; always high risk",
    ),
    RoleSpec(
        role=AgentRole.PROMPT,
        name="Prompt engineer",
        prompt=(
            "You are the prompt engineer. Read the runs that failed and the briefings they "
            "were given, and propose a change to one agent profile's prompt template: the "
            "new template in full, and the failures it should prevent. Propose only; a "
            "person applies the change, which makes a new prompt version."
        ),
        handoff="on request, or when a profile's circuit breaker opens",
    ),
    RoleSpec(
        role=AgentRole.PRODUCT,
        name="Product manager",
        prompt=(
            "You are the product manager. When requirements are unclear or an agent asked "
            "a question, expand the requirements for the developer and the tester and "
            "write acceptance criteria as short, testable statements (Given/When/Then). "
            "Answer open questions from the requirements and the FRD; ask a person only "
            "what neither says."
        ),
        handoff="when an agent asks a question on a subtask, or requirements are unclear",
    ),
)

ROLE_SPECS = {spec.role: spec for spec in FURTHER_ROLES}


def instructions_for(role: str, profile: AgentProfile | None) -> str:
    """The profile's own prompt template, else the role's standard one."""
    if profile is not None and profile.prompt_template.strip():
        return profile.prompt_template
    spec = ROLE_SPECS.get(role)
    return spec.prompt if spec else ROLE_INTRO.get(role, "")


def further_profiles_seed(*, workspace: Workspace) -> list[AgentProfile]:
    """Create the further roles' profiles a workspace lacks; existing ones are left as they are."""
    profiles = []
    for spec in FURTHER_ROLES:
        profile, _ = AgentProfile.objects.get_or_create(
            workspace=workspace,
            name=spec.name,
            defaults={
                "role": spec.role,
                "executor": Executor.EXTERNAL,
                "prompt_template": spec.prompt,
                "executor_config": {"handoff": spec.handoff},
            },
        )
        profiles.append(profile)
    return profiles
