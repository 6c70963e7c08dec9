"""CodeMaestro as an MCP server: the agents' API as tools, over stdio or streamable HTTP.

    python -m agents.mcp_server --token cm_...        # stdio (or CODEMAESTRO_TOKEN=...)
    python manage.py mcp_http --port 8765             # streamable HTTP at /mcp

Every tool calls the same function of `agents.operations` as the REST API, with the same
access checks. The caller is an API token: on stdio the one the server was started with,
over HTTP the bearer token of each request (checked by the SDK's auth middleware).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import close_old_connections

SERVER_NAME = "codemaestro"
INSTRUCTIONS = """\
CodeMaestro hands out work on subtasks to agents in roles (tester, developer, ...).
A session: claim_run → get_briefing(run_id) → change the code → submit_patch (a unified
diff against the run's branch; refused with git's reason if it does not apply) →
report_result(success=true). Call heartbeat before the lease expires; release_run if you
stop without finishing. ask_question when the requirements are unclear (blocks_subtask
stops the subtask until a person answers; the answer appears in the next briefing).
"""
T = TypeVar("T", bound=Callable[..., Any])

# The stdio server acts as one token for its whole life; HTTP requests each bring theirs.
_stdio_key: str | None = None


def _current_key() -> str | None:
    from mcp.server.auth.middleware.auth_context import get_access_token

    token = get_access_token()
    return token.token if token is not None else _stdio_key


def _tool(func: T) -> T:
    """Run an operation as the current caller; domain errors become tool errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mcp.server.mcpserver.exceptions import ToolError

        from agents import access
        from orchestration.errors import DomainError

        close_old_connections()
        try:
            key = _current_key()
            principal = access.principal_for_key(key) if key else None
            if principal is None:
                raise ToolError("unauthenticated: the API token is missing, invalid or revoked")
            access.touch(principal)
            return func(principal, *args, **kwargs)
        except DomainError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from exc
        finally:
            close_old_connections()

    # The SDK reads the tool's parameters from the signature: hide the principal.
    wrapper.__signature__ = _without_first(func)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _without_first(func: Callable[..., Any]):
    import inspect

    signature = inspect.signature(func, eval_str=True)
    return signature.replace(parameters=list(signature.parameters.values())[1:])


def build_server(**settings: Any):
    """The MCPServer with CodeMaestro's tools; `settings` go to its constructor (auth)."""
    from mcp.server.mcpserver import MCPServer

    from agents import operations as ops

    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, **settings)

    @server.tool()
    @_tool
    def list_runs(
        principal, role: str | None = None, workspace: str | None = None
    ) -> dict[str, Any]:
        """Queued runs you could claim now, oldest first. Agent tokens list their own role."""
        return {"runs": ops.runs_list(principal, role=role, workspace=workspace)}

    @server.tool()
    @_tool
    def claim_run(
        principal,
        role: str | None = None,
        workspace: str | None = None,
        lease_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Claim the oldest runnable run of your role; `run` is null when there is no work.

        Keep the returned lease_id: every later call on the run needs it.
        """
        run = ops.run_claim(principal, role=role, workspace=workspace, lease_seconds=lease_seconds)
        return {"run": run}

    @server.tool()
    @_tool
    def heartbeat(
        principal, run_id: str, lease_id: str, lease_seconds: int | None = None
    ) -> dict[str, Any]:
        """Extend the lease of a run you hold."""
        return ops.run_heartbeat(
            principal, run_id=run_id, lease_id=lease_id, lease_seconds=lease_seconds
        )

    @server.tool()
    @_tool
    def get_briefing(
        principal,
        subtask_id: str | None = None,
        run_id: str | None = None,
        budget: int | None = None,
    ) -> dict[str, Any]:
        """Everything to start on a subtask: requirements, log, relevant files, failures,
        questions, review comments; trimmed to your profile's token budget."""
        return ops.briefing_get(principal, subtask_id=subtask_id, run_id=run_id, budget=budget)

    @server.tool()
    @_tool
    def submit_patch(principal, run_id: str, lease_id: str, patch: str) -> dict[str, Any]:
        """Apply a unified diff (as `git diff` prints it) to the run's branch and publish it.

        Refused with git's reason if it does not apply; the run stays yours to retry.
        """
        return ops.patch_submit(principal, run_id=run_id, lease_id=lease_id, patch=patch)

    @server.tool()
    @_tool
    def report_result(
        principal,
        run_id: str,
        lease_id: str,
        success: bool,
        output: str = "",
        error: str = "",
        failure_class: str = "agent",
        result: dict | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost: float = 0,
    ) -> dict[str, Any]:
        """Finish the run. Success needs a submitted patch (or, for a plan run, the manifest
        in `result`); a failure says why in `error`."""
        return ops.result_report(
            principal,
            run_id=run_id,
            lease_id=lease_id,
            success=success,
            output=output,
            error=error,
            failure_class=failure_class,
            result=result,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
        )

    @server.tool()
    @_tool
    def release_run(principal, run_id: str, lease_id: str, reason: str = "") -> dict[str, Any]:
        """Give a run you hold back to the queue without finishing it."""
        return ops.run_release(principal, run_id=run_id, lease_id=lease_id, reason=reason)

    @server.tool()
    @_tool
    def ask_question(
        principal,
        subtask_id: str,
        text: str,
        blocks_subtask: bool = False,
        run_id: str | None = None,
        lease_id: str | None = None,
    ) -> dict[str, Any]:
        """Ask the people about a subtask. With blocks_subtask the subtask (and your run)
        stops until the answer, which the next briefing carries."""
        return ops.question_ask(
            principal,
            subtask_id=subtask_id,
            text=text,
            blocks_subtask=blocks_subtask,
            run_id=run_id,
            lease_id=lease_id,
        )

    @server.tool()
    @_tool
    def list_questions(principal, subtask_id: str) -> dict[str, Any]:
        """The subtask's questions, open and answered."""
        return {"questions": ops.questions_list(principal, subtask_id=subtask_id)}

    @server.tool()
    @_tool
    def read_review_comments(principal, subtask_id: str) -> dict[str, Any]:
        """Unresolved review comments on the subtask's changes."""
        return {"comments": ops.review_comments(principal, subtask_id=subtask_id)}

    return server


def http_app(*, host: str, port: int, public_url: str | None = None):
    """The streamable HTTP app at /mcp; each request must bring a valid API token."""
    from mcp.server.auth.settings import AuthSettings

    base = (public_url or f"http://{host}:{port}").rstrip("/")
    server = build_server(
        token_verifier=ApiTokenVerifier(),
        auth=AuthSettings(
            issuer_url=base,
            resource_server_url=f"{base}/mcp",
            # Our tokens are CodeMaestro API keys, valid for this server only.
            validate_token_resource=False,
        ),
    )
    return server.streamable_http_app(host=host)


class ApiTokenVerifier:
    """The SDK's TokenVerifier over CodeMaestro's API tokens (hashed lookup, revocation)."""

    async def verify_token(self, token: str):
        import anyio.to_thread
        from mcp.server.auth.provider import AccessToken

        principal = await anyio.to_thread.run_sync(_principal_or_none, token)
        if principal is None:
            return None
        api_token = principal.token
        return AccessToken(token=token, client_id=str(api_token.code), scopes=[])


def _principal_or_none(key: str):
    from agents.access import principal_for_key

    close_old_connections()
    try:
        return principal_for_key(key)
    finally:
        close_old_connections()


def main(argv: list[str] | None = None) -> None:
    global _stdio_key
    parser = argparse.ArgumentParser(prog="python -m agents.mcp_server", description=__doc__)
    parser.add_argument("--token", help="API token (default: $CODEMAESTRO_TOKEN)")
    args = parser.parse_args(argv)
    _stdio_key = args.token or os.environ.get("CODEMAESTRO_TOKEN")
    if not _stdio_key:
        sys.exit("an API token is needed: --token or CODEMAESTRO_TOKEN")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
    import django

    django.setup()
    build_server().run("stdio")


if __name__ == "__main__":
    main()
