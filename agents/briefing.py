"""The briefing: everything an agent needs to start on a subtask, in one JSON object.

Keys (DESIGN.md): `subtask`, `log`, `requirements`, `relevantFiles`, `recentActivity`,
`openQuestions`; for a retry also `retry` (the previous failure), and `reviewComments`
(unresolved). `tokens` is the briefing's size with a real tokenizer, and `budget` says
the limit, the order in which sections give way, and what was left out.

The number of SQL queries is the same for every subtask, however long its history: each
kind of row is read in one query, and the log is cut by the budget, not by more queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Subquery

from accounts.scrubbing import remember_workspace, scrub_data
from agents import relevance, review
from agents.models import BriefingRecord, Question
from agents.roles import instructions_for
from agents.tokens import as_json, count_json, count_tokens, truncate_to_tokens
from orchestration.models import (
    AgentProfile,
    AgentRun,
    CaseOutcome,
    Event,
    RunStatus,
    Subtask,
    TestCaseResult,
    TestRun,
    TestRunStatus,
)
from orchestration.services.dispatch import profile_for

DEFAULT_BUDGET_TOKENS = 16_000
MIN_BUDGET_TOKENS = 500
RECENT_EVENTS = 10
# Sections that give way to the budget, most important first: when the briefing is too
# large, the log goes first, then recent activity, relevant files, review comments, open
# questions and, last, the retry context. The subtask, its requirements and the role's
# instructions are never cut.
PRIORITY = ("retry", "openQuestions", "reviewComments", "relevantFiles", "recentActivity", "log")
# Sections whose oldest items go first and whose newest are kept together.
NEWEST_FIRST = frozenset({"recentActivity", "log"})
FAILURE_CONTEXT_MIN_TOKENS = 80


@dataclass
class Briefing:
    body: dict[str, Any]
    record: BriefingRecord | None


def budget_for(profile: AgentProfile | None) -> int:
    """The profile's context budget (`executor_config.context_budget`), or the default."""
    raw = (profile.executor_config or {}).get("context_budget") if profile else None
    try:
        budget = int(raw) if raw is not None else DEFAULT_BUDGET_TOKENS
    except (TypeError, ValueError):
        budget = DEFAULT_BUDGET_TOKENS
    return max(budget, MIN_BUDGET_TOKENS)


def briefing_build(
    *,
    subtask: Subtask,
    requested_by: str,
    run: AgentRun | None = None,
    role: str | None = None,
    budget: int | None = None,
    record: bool = True,
) -> Briefing:
    """Build the briefing of `subtask` for `role` (or the run's), trimmed to the budget."""
    role = run.role if run is not None else (role or _stage_role(subtask))
    profile = run.profile if run is not None and run.profile_id else None
    if profile is None:
        profile = profile_for(subtask.project, role, subtask)
    limit = budget or budget_for(profile)
    history = _History.load(subtask)
    fixed = _fixed_sections(subtask, role, run, profile)
    sections = _trimmable_sections(subtask, run, role, history)
    body, trimmed = fit(fixed, sections, limit)
    # Outputs, errors, comments and answers quoted here may hold a secret value an agent
    # echoed; the briefing leaves the server, so it is scrubbed (one query, any history).
    remember_workspace(subtask.workspace_id)
    body = scrub_data(body)
    body["budget"] = {"limit": limit, "order": list(PRIORITY), "trimmed": trimmed}
    tokens = body["tokens"] = 0
    # The size of the whole object as sent, this field included: its own digits count too,
    # so count until the number stops changing (twice at most).
    for _ in range(3):
        body["tokens"] = tokens
        tokens = count_json(body)
        if tokens == body["tokens"]:
            break
    body["tokens"] = tokens
    saved = None
    if record:
        saved = BriefingRecord.objects.create(
            workspace_id=subtask.workspace_id,
            subtask=subtask,
            run=run,
            profile=profile,
            role=role,
            requested_by=requested_by[:120],
            tokens=tokens,
            budget=limit,
            trimmed=trimmed,
        )
    return Briefing(body=body, record=saved)


def _stage_role(subtask: Subtask) -> str:
    return "tester" if subtask.stage == "tests" else "developer"


@dataclass
class _History:
    """Every row the briefing reads, one query per kind."""

    events: list[dict]
    runs: list[dict]
    test_runs: list[dict]
    failing_cases: list[dict]
    questions: list[Question]

    @classmethod
    def load(cls, subtask: Subtask) -> _History:
        events = list(
            Event.objects.filter(subtask=subtask)
            .order_by("-id")
            .values("id", "kind", "actor", "message", "created_at")
        )
        runs = list(
            AgentRun.objects.filter(subtask=subtask)
            .order_by("id")
            .values(
                "code", "role", "step", "status", "attempt", "claimed_by", "error",
                "result", "created_at", "finished_at",
            )
        )  # fmt: skip
        test_runs = list(
            TestRun.objects.filter(subtask=subtask)
            .order_by("id")
            .values(
                "code", "purpose", "status", "commit_sha", "total", "passed", "failed",
                "errors", "failure_context", "created_at",
            )
        )  # fmt: skip
        return cls(
            events=events,
            runs=runs,
            test_runs=test_runs,
            failing_cases=_failing_cases(subtask),
            questions=list(Question.objects.filter(subtask=subtask).order_by("id")),
        )

    @property
    def last_failed_test_run(self) -> dict | None:
        failed = [t for t in self.test_runs if t["failure_context"]]
        return failed[-1] if failed else None


def _failing_cases(subtask: Subtask) -> list[dict]:
    """Failing cases of the subtask's latest test run that has a failure context."""
    latest = (
        TestRun.objects.filter(subtask=subtask, status=TestRunStatus.FAILED)
        .exclude(failure_context="")
        .order_by("-id")
        .values("id")[:1]
    )
    return list(
        TestCaseResult.objects.filter(
            test_run_id=Subquery(latest),
            outcome__in=[CaseOutcome.FAILED, CaseOutcome.ERROR],
        )
        .order_by("id")
        .values("name", "classname", "file", "message")[:50]
    )


def _fixed_sections(
    subtask: Subtask, role: str, run: AgentRun | None, profile: AgentProfile | None
) -> dict[str, Any]:
    feature = subtask.feature
    return {
        "subtask": {
            "id": str(subtask.code),
            "key": subtask.key,
            "title": subtask.title,
            "description": subtask.description,
            "status": subtask.status,
            "stage": subtask.stage,
            "ownerRole": subtask.owner_role,
            "risk": subtask.risk,
            "attempts": subtask.attempts,
            "blockedReason": subtask.blocked_reason,
            "project": {
                "id": str(subtask.project.code),
                "name": subtask.project.name,
                "defaultBranch": subtask.project.default_branch,
                "testCommand": subtask.project.test_command,
            },
            "feature": None
            if feature is None
            else {"id": str(feature.code), "title": feature.title, "branch": feature.branch},
        },
        "role": role,
        "instructions": instructions_for(role, profile),
        "run": None
        if run is None
        else {
            "id": str(run.code),
            "step": run.step,
            "attempt": run.attempt,
            "status": run.status,
            "leaseExpiresAt": run.lease_expires_at.isoformat() if run.lease_expires_at else None,
        },
        "requirements": {
            "developer": subtask.requirements_developer,
            "tester": subtask.requirements_tester,
        },
    }


def _trimmable_sections(
    subtask: Subtask, run: AgentRun | None, role: str, history: _History
) -> dict[str, list]:
    """Each section as a list of items, most wanted first."""
    comments = review.unresolved_comments(subtask)
    events = [_event(e) for e in history.events]  # newest first
    hints = relevance.Hints(
        texts=[subtask.title, subtask.description, subtask.requirements_developer,
               subtask.requirements_tester],
        failing_tests=history.failing_cases,
        review_anchors=[{"path": c["path"], "line": c.get("line")} for c in comments],
    )  # fmt: skip
    branch = subtask.feature.branch if subtask.feature else subtask.project.default_branch
    files, problem = relevance.relevant_files(subtask.project, branch, hints)
    return {
        "retry": _retry_items(run, role, history),
        "openQuestions": _question_items(history.questions),
        "reviewComments": comments,
        "relevantFiles": files or ([{"problem": problem}] if problem else []),
        "recentActivity": events[:RECENT_EVENTS],
        "log": _log_items(history, events),
    }


def _event(row: dict) -> dict:
    return {
        "id": row["id"],
        "at": row["created_at"].isoformat(),
        "kind": row["kind"],
        "actor": row["actor"],
        "message": row["message"],
    }


def _retry_items(run: AgentRun | None, role: str, history: _History) -> list:
    items: list = []
    failed_runs = [r for r in history.runs if r["status"] == RunStatus.FAILED and r["role"] == role]
    if failed_runs:
        last = failed_runs[-1]
        items.append(
            ("previousRun", {
                "id": str(last["code"]),
                "attempt": last["attempt"],
                "failureClass": (last["result"] or {}).get("failure_class", "agent"),
                "error": last["error"][:4000],
            })
        )  # fmt: skip
    test_run = history.last_failed_test_run
    if test_run is not None and role != "tester":
        items.append(
            ("testRun", {"id": str(test_run["code"]), "commit": test_run["commit_sha"],
                         "passed": test_run["passed"], "total": test_run["total"]})
        )  # fmt: skip
        items += [
            ("failingTest", {k: case[k] for k in ("classname", "name", "file", "message")})
            for case in history.failing_cases
        ]
        items.append(("failureContext", test_run["failure_context"]))
    if items:
        attempt = run.attempt if run is not None else None
        items.insert(0, ("attempt", attempt))
    return items


def _question_items(questions: list[Question]) -> list[dict]:
    """Open questions first (they may block), then answered ones, newest answers first."""
    open_ = [q for q in questions if q.is_open]
    answered = sorted((q for q in questions if not q.is_open), key=lambda q: q.answered_at)
    return [_question(q) for q in [*open_, *reversed(answered)]]


def _question(question: Question) -> dict:
    return {
        "id": str(question.code),
        "text": question.text,
        "askedBy": question.asked_by,
        "blocksSubtask": question.blocks_subtask,
        "status": "open" if question.is_open else "answered",
        "answer": question.answer or None,
        "answeredBy": question.answered_by or None,
        "askedAt": question.created_at.isoformat(),
    }


def _log_items(history: _History, events: list[dict]) -> list:
    """Runs and test runs are few and say the most; events follow, newest first."""
    items: list = [("run", _run(r)) for r in reversed(history.runs)]
    items += [("testRun", _test_run(t)) for t in reversed(history.test_runs)]
    items += [("event", e) for e in events]
    return items


def _run(row: dict) -> dict:
    return {
        "id": str(row["code"]),
        "role": row["role"],
        "step": row["step"],
        "status": row["status"],
        "attempt": row["attempt"],
        "claimedBy": row["claimed_by"],
        "error": row["error"][:1000],
        "commit": (row["result"] or {}).get("commit"),
        "createdAt": row["created_at"].isoformat(),
        "finishedAt": row["finished_at"].isoformat() if row["finished_at"] else None,
    }


def _test_run(row: dict) -> dict:
    return {
        "id": str(row["code"]),
        "purpose": row["purpose"],
        "status": row["status"],
        "commit": row["commit_sha"],
        "passed": row["passed"],
        "failed": row["failed"],
        "errors": row["errors"],
        "total": row["total"],
        "createdAt": row["created_at"].isoformat(),
    }


# --- the budget -----------------------------------------------------------------------


def fit(
    fixed: dict[str, Any], sections: dict[str, list], limit: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """Fill the sections in PRIORITY order with as many items as the budget leaves room for.

    Items are counted one by one and only until the budget is spent, so a long log costs
    no more tokenizer time than a short one. Returns the body and, per section, how many
    items were left out.
    """
    body = {**fixed, **{name: _assemble(name, []) for name in PRIORITY}}
    placeholder = {"limit": limit, "order": list(PRIORITY), "trimmed": dict.fromkeys(PRIORITY, 0)}
    # The margin covers what counting items one by one cannot see: the separators and keys
    # around them, and the size fields added at the end.
    left = limit - count_json({**body, "budget": placeholder, "tokens": limit}) - limit // 50
    trimmed: dict[str, int] = {}
    for name in PRIORITY:
        kept, dropped, left = _take(name, sections[name], left)
        body[name] = _assemble(name, kept)
        if dropped:
            trimmed[name] = dropped
    return body, trimmed


def _take(name: str, items: list, left: int) -> tuple[list, int, int]:
    kept: list = []
    for position, item in enumerate(items):
        cost = count_tokens(as_json(_value(item))) + 1  # the separator
        if cost <= left:
            kept.append(item)
            left -= cost
            continue
        cut = _cut_to_fit(item, left)
        if cut is not None:
            kept.append(cut)
            left -= count_tokens(as_json(_value(cut))) + 1
            return kept, len(items) - position, left
        if name in NEWEST_FIRST:
            return kept, len(items) - position, left
    return kept, len(items) - len(kept), left


def _value(item: Any) -> Any:
    return item[1] if isinstance(item, tuple) else item


def _cut_to_fit(item: Any, left: int) -> Any | None:
    """A shorter form of a long text item, when a useful part of it still fits."""
    if left < FAILURE_CONTEXT_MIN_TOKENS:
        return None
    if isinstance(item, tuple) and item[0] == "failureContext":
        return ("failureContext", truncate_to_tokens(item[1], left - 8))
    if isinstance(item, dict) and "snippet" in item:
        room = left - count_json({**item, "snippet": ""}) - 8
        if room >= FAILURE_CONTEXT_MIN_TOKENS // 2:
            return {**item, "snippet": truncate_to_tokens(item["snippet"], room)}
    return None


def _assemble(name: str, kept: list) -> Any:
    if name == "retry":
        return _assemble_retry(kept)
    if name == "log":
        return _assemble_log(kept)
    if name in NEWEST_FIRST:
        return list(reversed(kept))  # shown oldest to newest
    return kept


def _assemble_retry(kept: list) -> dict | None:
    if not kept:
        return None
    retry: dict[str, Any] = {"failingTests": []}
    for key, value in kept:
        if key == "failingTest":
            retry["failingTests"].append(value)
        else:
            retry[key] = value
    return retry


def _assemble_log(kept: list) -> dict:
    log: dict[str, list] = {"runs": [], "testRuns": [], "events": []}
    for key, value in kept:
        log[f"{key}s"].append(value)
    # Oldest first, as a log reads; the items were taken newest first.
    return {name: list(reversed(values)) for name, values in log.items()}
