"""A planted secret value never reaches logs, events, run records, briefings, API responses
or error pages, whichever way it travels (agent output, exception, log line, payload)."""

from __future__ import annotations

import html
import json
import logging
import sys
from urllib.parse import quote

import pytest
from django.http import HttpRequest
from django.test import Client
from django.urls import path

from accounts import scrubbing, secrets
from accounts.models import Role, Secret
from accounts.scrubbing import ScrubSecretsFilter, scrub
from agents.briefing import briefing_build
from audit.models import AuditEntry
from orchestration.demo.seed import demo_repo_create
from orchestration.models import AgentProfile, AgentRun, Event, Executor, RunStatus
from orchestration.services import execution
from orchestration.services.briefings import briefing_for
from orchestration.services.events import event_record
from tests.factories import ProjectFactory, RunFactory, SubtaskFactory

# A quote in the value: JSON and HTML escape it, so only form-aware scrubbing catches those.
VALUE = 'sk-"planted"-Zq8v0d3x-2026'
FORMS = (VALUE, json.dumps(VALUE)[1:-1], html.escape(VALUE), quote(VALUE, safe=""))


def leaked(text: str) -> list[str]:
    return [form for form in FORMS if form in text]


@pytest.fixture(autouse=True)
def fresh_scrubber():
    scrubbing.forget_all()
    yield
    scrubbing.forget_all()


def plant(workspace, name="API_KEY", environment="dev") -> Secret:
    return secrets.secret_create(
        workspace=workspace, name=name, environment=environment, value=VALUE, actor="user:test"
    )


# --- scrub itself ---------------------------------------------------------------------


def test_scrub_masks_every_form_of_a_known_value_and_nothing_else():
    # given
    scrubbing.remember([VALUE, "abc"])

    # when
    text = " | ".join([*FORMS, "abc", "sk-other-value"])

    # then: too short a value is not masked (it would garble ordinary text)
    assert scrub(text) == "****** | ****** | ****** | ****** | abc | sk-other-value"


def test_nothing_is_masked_before_a_value_is_known():
    assert scrub(f"key {VALUE}") == f"key {VALUE}"


def test_a_revealed_value_is_known_from_then_on(workspace):
    secret = plant(workspace)
    scrubbing.forget_all()  # a fresh process

    Secret.objects.get(pk=secret.pk).reveal()

    assert scrub(f"key {VALUE}") == "key ******"


# --- logs -----------------------------------------------------------------------------


@pytest.fixture
def log_file(tmp_path):
    """A real file handler with no filter of its own, on the root logger."""
    handler = logging.FileHandler(tmp_path / "app.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield tmp_path / "app.log"
    root.removeHandler(handler)
    handler.close()


def test_log_lines_and_tracebacks_never_carry_a_value(workspace, caplog, log_file):
    # given
    Secret.objects.get(pk=plant(workspace).pk).reveal()
    log = logging.getLogger("orchestration.executors.llm")

    # when
    with caplog.at_level(logging.INFO):
        log.warning("calling the model with key %s", VALUE)
        try:
            raise ConnectionError(f"401 from upstream for {VALUE}")
        except ConnectionError:
            log.exception("model call failed")

    # then
    written = log_file.read_text(encoding="utf-8")
    for text in (caplog.text, written):
        assert leaked(text) == []
        assert "calling the model with key ******" in text
        assert "ConnectionError: 401 from upstream for ******" in text
    assert [r.getMessage() for r in caplog.records] == [
        "calling the model with key ******",
        "model call failed",
    ]


def test_every_configured_handler_has_the_filter_and_it_scrubs_on_its_own(workspace):
    # given: a record that did not go through the record factory (as from another process)
    scrubbing.remember([VALUE])
    record = logging.makeLogRecord({"msg": "token %s", "args": (VALUE,), "levelno": 30})

    # when
    handlers = logging.getLogger().handlers
    configured = [h for h in handlers if any(isinstance(f, ScrubSecretsFilter) for f in h.filters)]
    ScrubSecretsFilter().filter(record)

    # then
    assert configured, "LOGGING's console handler must carry the filter"
    assert record.getMessage() == "token ******"


# --- error pages ----------------------------------------------------------------------


def leaky_view(request: HttpRequest):
    value = Secret.objects.get(name="API_KEY").reveal()
    raise RuntimeError(f"upstream refused key {value}")


urlpatterns = [path("leaky/", leaky_view)]


@pytest.mark.urls("tests.accounts.test_scrubbing")
def test_the_debug_error_page_masks_the_value_everywhere(workspace, settings, caplog):
    # given
    settings.DEBUG = True
    plant(workspace)
    scrubbing.forget_all()  # only the view's own reveal makes it known
    client = Client(raise_request_exception=False)

    # when: the value also rides in the query string and the form
    response = client.post(f"/leaky/?q={quote(VALUE)}", {"note": VALUE})

    # then
    page = response.content.decode()
    assert response.status_code == 500
    assert "upstream refused key ******" in page  # the exception message
    assert "RuntimeError" in page
    assert leaked(page) == []
    assert leaked(caplog.text) == []


@pytest.mark.urls("tests.accounts.test_scrubbing")
def test_the_production_error_page_and_its_log_mask_the_value(workspace, settings, caplog):
    # given
    settings.DEBUG = False
    plant(workspace)
    client = Client(raise_request_exception=False)

    # when
    response = client.get("/leaky/")

    # then
    assert response.status_code == 500
    assert leaked(response.content.decode()) == []
    assert "RuntimeError: upstream refused key ******" in caplog.text
    assert leaked(caplog.text) == []


# --- a real run -----------------------------------------------------------------------


@pytest.fixture
def repo_project(tmp_path, settings, workspace):
    settings.DATA_DIR = tmp_path / "data"
    repo = settings.DATA_DIR / "repos" / "textkit"
    demo_repo_create(path=repo)
    return ProjectFactory(workspace=workspace, repo_path=str(repo))


# The agent prints its key as JSON (escaped: the executor's exact-match mask misses it),
# writes it to stderr and fails.
AGENT = (
    "import json, os, sys; key = os.environ['API_KEY']; "
    "print(json.dumps({'using': key})); print('key', key, file=sys.stderr); sys.exit(3)"
)


def test_an_agent_echoing_its_key_leaves_no_trace_anywhere(
    workspace, repo_project, api_as, caplog, log_file
):
    # given: the key granted to a command agent, and a human pasting it into the subtask
    profile = AgentProfile.objects.create(
        workspace=workspace,
        name="Devon",
        role="developer",
        executor=Executor.COMMAND,
        executor_config={"command": [sys.executable, "-c", AGENT], "timeout": 60},
    )
    profile.granted_secrets.add(plant(workspace))
    subtask = SubtaskFactory(project=repo_project, description=f"Use the key {VALUE}")
    run = RunFactory(subtask=subtask, profile=profile)
    scrubbing.forget_all()  # a fresh worker: it learns the value by being given it

    # when: the worker runs it; an event payload and the briefings quote the value too
    with caplog.at_level(logging.INFO):
        outcome = execution.run_execute(run.pk, worker="worker:test")
        event_record(
            workspace_id=workspace.pk,
            kind="note",
            message=f"agent said {VALUE}",
            run=run,
            data={"said": VALUE, "nested": [{"again": VALUE}]},
        )
    scrubbing.forget_all()  # briefings are built by other processes
    handed_over = briefing_for(
        role="developer", step="implementation", feature=None, subtask=subtask
    )
    briefing = briefing_build(subtask=subtask, requested_by="test", run=run).body
    client = api_as(Role.ADMIN)
    responses = [
        client.get(f"/api/v1/runs/{run.code}/"),
        client.get("/api/v1/events/"),
        client.get(f"/api/agent/briefing/{subtask.code}"),
    ]

    # then: the run failed and recorded what the agent did, masked
    run = AgentRun.objects.get(pk=run.pk)
    assert outcome == "failed (agent)"
    assert run.status == RunStatus.FAILED
    assert '{"using": "******"}' in run.output
    assert leaked(run.output + run.error) == []
    assert leaked(json.dumps(list(Event.objects.values("message", "data")))) == []
    assert Event.objects.get(kind="note").data == {
        "said": "******",
        "nested": [{"again": "******"}],
    }
    assert "Use the key ******" in handed_over and leaked(handed_over) == []
    assert leaked(json.dumps(briefing)) == []
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(leaked(r.content.decode()) == [] for r in responses)
    assert leaked(caplog.text) == [] and leaked(log_file.read_text()) == []
    assert (
        AuditEntry.objects.filter(action="secret.accessed", target="secret:API_KEY:dev").count()
        == 1
    )
