"""Small display helpers shared by the control-room templates."""

from __future__ import annotations

from django import template

from accounts.models import AgentRole
from dashboard.graphs import duration_label

register = template.Library()

AGENT_NAMES = {AgentRole.PM: "Orion", AgentRole.TESTER: "Tara", AgentRole.DEVELOPER: "Devon"}


@register.filter
def agent(role: str) -> str:
    """The agent's name for a role: pm → Orion, tester → Tara, developer → Devon."""
    return AGENT_NAMES.get(role, role)


@register.filter
def duration(seconds) -> str:
    return duration_label(seconds)


@register.filter
def state_label(state: str) -> str:
    return state.replace("_", " ").capitalize()


@register.filter
def verb(transition: str) -> str:
    return transition.replace("_", " ").capitalize()
