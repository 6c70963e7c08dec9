"""`manage.py mcp_http`: the MCP server over streamable HTTP, at /mcp on its own port."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve CodeMaestro's MCP tools over streamable HTTP (bearer API tokens)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--public-url", help="the URL clients use, if not http://HOST:PORT (a proxy)"
        )

    def handle(self, *args, host: str, port: int, public_url: str | None, **options) -> None:
        import uvicorn

        from agents.mcp_server import http_app

        app = http_app(host=host, port=port, public_url=public_url)
        self.stdout.write(f"MCP (streamable HTTP) on http://{host}:{port}/mcp")
        uvicorn.run(app, host=host, port=port, log_level="warning")
