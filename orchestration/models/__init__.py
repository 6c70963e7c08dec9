from orchestration.models.agents import (
    AgentProfile,
    AgentRun,
    BreakerState,
    Executor,
    RunStatus,
    RunStep,
)
from orchestration.models.events import Event, EventKind, HandledEvent
from orchestration.models.handoffs import DEFAULT_HANDOFFS, HandoffAction, HandoffRule, Trigger
from orchestration.models.projects import FeatureRequest, FeatureStatus, Project
from orchestration.models.proposals import PromptProposal, ProposalStatus
from orchestration.models.subtasks import Risk, Stage, Subtask, SubtaskDependency, SubtaskStatus
from orchestration.models.testruns import (
    CaseOutcome,
    CoverageFile,
    FlakyTest,
    TestCaseResult,
    TestRun,
    TestRunPurpose,
    TestRunStatus,
)

__all__ = [
    "DEFAULT_HANDOFFS",
    "AgentProfile",
    "AgentRun",
    "BreakerState",
    "CaseOutcome",
    "CoverageFile",
    "Event",
    "EventKind",
    "Executor",
    "FeatureRequest",
    "FeatureStatus",
    "FlakyTest",
    "HandledEvent",
    "HandoffAction",
    "HandoffRule",
    "Project",
    "PromptProposal",
    "ProposalStatus",
    "Risk",
    "RunStatus",
    "RunStep",
    "Stage",
    "Subtask",
    "SubtaskDependency",
    "SubtaskStatus",
    "TestCaseResult",
    "TestRun",
    "TestRunPurpose",
    "TestRunStatus",
    "Trigger",
]
