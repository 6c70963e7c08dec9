"""Retry, escalation, failure classes, budgets and the tests-first gate, on a real repo with
command-line agents (tasks run inline at commit)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from accounts.models import AgentRole
from orchestration.demo.catalogue import SLUG_V1, SLUG_V1_BUGGY, STEPS_BY_KEY
from orchestration.models import (
    AgentProfile,
    AgentRun,
    BreakerState,
    Event,
    EventKind,
    Executor,
    FlakyTest,
    Subtask,
    SubtaskStatus,
    TestCaseResult,
)
from orchestration.services import planning

pytestmark = pytest.mark.django_db(transaction=True)


def command_agent(project, role: str, tmp_path: Path, body: str) -> None:
    """Make `role` a command agent running a small Python script in its worktree."""
    script = tmp_path / f"{role}.py"
    script.write_text(
        "import json, os, pathlib\nattempt = int(os.environ['CODEMAESTRO_ATTEMPT'])\n" + body
    )
    AgentProfile.objects.filter(workspace=project.workspace, role=role).update(
        executor=Executor.COMMAND, executor_config={"command": f"python {script}", "timeout": 60}
    )


def devon_fixing_at(project, tmp_path, attempt: int, cost: float = 0) -> None:
    usage = f"json.dumps({{'usage': {{'cost': {cost}}}}})"
    command_agent(
        project,
        AgentRole.DEVELOPER,
        tmp_path,
        f"code = {SLUG_V1!r} if attempt >= {attempt} else {SLUG_V1_BUGGY!r}\n"
        # A different buggy version each time: the same file again would be no change.
        "code += '' if attempt >= " + str(attempt) + " else f'# attempt {attempt}\\n'\n"
        "pathlib.Path('textkit/slug.py').write_text(code)\n"
        f"pathlib.Path(os.environ['CODEMAESTRO_RESULT_FILE']).write_text({usage})\n",
    )


def set_policy(project, **policy) -> None:
    project.policy = {**project.policy, **policy}
    project.save(update_fields=["policy"])


def first_subtask(project) -> Subtask:
    feature = planning.feature_request(project=project, title="Slugs", actor="user:alice")
    return Subtask.objects.get(feature=feature, key="slug-1")


@pytest.fixture
def webhook():
    """A local HTTP endpoint recording what the notification hook posts."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_a_developer_that_fails_twice_then_fixes_reaches_review(demo_project, tmp_path):
    # given
    devon_fixing_at(demo_project, tmp_path, attempt=3)
    # when
    subtask = first_subtask(demo_project)
    # then
    assert (subtask.status, subtask.attempts) == (SubtaskStatus.READY_FOR_REVIEW, 2)
    runs = AgentRun.objects.filter(subtask=subtask, step="implementation").order_by("attempt")
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert "Previous failure" in runs[2].briefing


def test_a_developer_that_never_fixes_is_escalated_after_n_attempts(
    demo_project, tmp_path, webhook
):
    # given
    url, received = webhook
    set_policy(demo_project, notify_webhook=url)
    devon_fixing_at(demo_project, tmp_path, attempt=99)
    # when
    subtask = first_subtask(demo_project)
    # then
    assert subtask.status == SubtaskStatus.BLOCKED
    assert subtask.blocked_reason == "tests still fail after 3 attempts"
    assert AgentRun.objects.filter(subtask=subtask, step="implementation").count() == 3
    escalation = Event.objects.get(subtask=subtask, kind=EventKind.ESCALATED)
    assert received == [
        {
            "text": f"CodeMaestro needs a human: {escalation.message}",
            "event": {
                "id": escalation.pk,
                "kind": "subtask.escalated",
                "at": escalation.created_at.isoformat(),
            },
            "subtask": {"id": str(subtask.code), "key": "slug-1", "status": "blocked"},
            "reason": "tests still fail after 3 attempts",
        }
    ]


def test_resuming_a_blocked_subtask_continues_from_its_stage_with_fresh_attempts(
    demo_project, tmp_path
):
    # given: escalated after 3 failing attempts
    devon_fixing_at(demo_project, tmp_path, attempt=99)
    subtask = first_subtask(demo_project)
    assert subtask.status == SubtaskStatus.BLOCKED
    # when: a person fixes the agent and resumes the subtask
    devon_fixing_at(demo_project, tmp_path, attempt=1)
    from orchestration.services import transitions

    transitions.subtask_transition(subtask=subtask, name="resume", actor="user:alice")
    # then: Devon (not Tara) got the next run, and it went through
    subtask.refresh_from_db()
    assert (subtask.status, subtask.stage) == (SubtaskStatus.READY_FOR_REVIEW, "implementation")
    assert AgentRun.objects.filter(subtask=subtask, step="tests").count() == 1


def test_tests_that_pass_before_implementation_are_sent_back_to_the_tester(demo_project, tmp_path):
    # given: Tara writes a test that passes whatever the code does
    command_agent(
        demo_project,
        AgentRole.TESTER,
        tmp_path,
        "pathlib.Path('tests/test_slug.py').write_text("
        "'def test_always_true():\\n    assert True  # attempt ' + str(attempt) + '\\n')\n",
    )
    # when
    subtask = first_subtask(demo_project)
    # then: refused at every attempt, then escalated; Devon never ran
    refusals = Event.objects.filter(subtask=subtask, kind=EventKind.TESTS_NOT_RED)
    assert refusals.count() == 3
    assert "pass before any implementation" in refusals.first().message
    assert subtask.status == SubtaskStatus.BLOCKED
    assert not AgentRun.objects.filter(subtask=subtask, step="implementation").exists()
    second_try = AgentRun.objects.get(subtask=subtask, step="tests", attempt=2)
    assert "pass before any implementation" in second_try.briefing


def test_a_flaky_test_does_not_use_a_developer_attempt(demo_project, tmp_path):
    # given: a test that fails on its first execution only (the first verify run: the red
    # check stops at the collection error of test_slug.py and runs nothing)
    counter = tmp_path / "flaky-count"
    flaky = (
        "import pathlib\n"
        "def test_sometimes():\n"
        f"    p = pathlib.Path({str(counter)!r})\n"
        "    n = int(p.read_text()) if p.exists() else 0\n"
        "    p.write_text(str(n + 1))\n"
        "    assert n != 0\n"
    )
    tests = STEPS_BY_KEY["slug-1"].test_code
    command_agent(
        demo_project,
        AgentRole.TESTER,
        tmp_path,
        f"pathlib.Path('tests/test_slug.py').write_text({tests!r})\n"
        f"pathlib.Path('tests/test_flaky.py').write_text({flaky!r})\n",
    )
    devon_fixing_at(demo_project, tmp_path, attempt=1)
    # when
    subtask = first_subtask(demo_project)
    # then
    assert (subtask.status, subtask.attempts) == (SubtaskStatus.READY_FOR_REVIEW, 0)
    flake = FlakyTest.objects.get(project=demo_project)
    assert (flake.classname, flake.name, flake.flake_count) == (
        "tests.test_flaky",
        "test_sometimes",
        1,
    )
    assert TestCaseResult.objects.get(name="test_sometimes", flaky=True).outcome == "passed"
    assert Event.objects.filter(subtask=subtask, kind=EventKind.FLAKY).count() == 1


def test_a_missing_executor_binary_fails_preflight_without_using_attempts(demo_project):
    # given
    AgentProfile.objects.filter(workspace=demo_project.workspace, role="developer").update(
        executor=Executor.COMMAND, executor_config={"command": "no-such-agent-binary --go"}
    )
    # when
    subtask = first_subtask(demo_project)
    # then
    assert subtask.status == SubtaskStatus.BLOCKED
    assert (subtask.attempts, subtask.infra_failures) == (0, 5)
    run = AgentRun.objects.filter(subtask=subtask, step="implementation").first()
    assert run.error == "preflight: command not found: no-such-agent-binary"
    assert run.result == {"failure_class": "infrastructure"}
    devon = AgentProfile.objects.get(workspace=demo_project.workspace, role="developer")
    assert (devon.breaker_state, devon.consecutive_failures) == (BreakerState.CLOSED, 0)


def test_a_budget_cap_stops_a_looping_agent(demo_project, tmp_path):
    # given: each attempt costs 1.0, the feature may spend 2.5, attempts are plenty
    set_policy(demo_project, max_attempts=10, budget={"feature_cost": 2.5})
    devon_fixing_at(demo_project, tmp_path, attempt=99, cost=1.0)
    # when
    subtask = first_subtask(demo_project)
    # then
    assert subtask.status == SubtaskStatus.BLOCKED
    assert subtask.blocked_reason.startswith("budget cap reached: budget: the feature has cost")
    runs = AgentRun.objects.filter(subtask=subtask, step="implementation").order_by("id")
    assert [r.result.get("failure_class") for r in runs] == [None, None, None, "budget"]
    assert subtask.attempts == 3
