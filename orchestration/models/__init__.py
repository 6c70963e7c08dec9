from orchestration.models.agents import AgentProfile, AgentRun, Executor, RunStatus, RunStep
from orchestration.models.events import Event, EventKind
from orchestration.models.projects import FeatureRequest, FeatureStatus, Project
from orchestration.models.subtasks import Risk, Stage, Subtask, SubtaskDependency, SubtaskStatus

__all__ = [
    "AgentProfile",
    "AgentRun",
    "Event",
    "EventKind",
    "Executor",
    "FeatureRequest",
    "FeatureStatus",
    "Project",
    "Risk",
    "RunStatus",
    "RunStep",
    "Stage",
    "Subtask",
    "SubtaskDependency",
    "SubtaskStatus",
]
