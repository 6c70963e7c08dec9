from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """The agents' side: briefings, questions, patches, the MCP server and the agent CLI."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "agents"
