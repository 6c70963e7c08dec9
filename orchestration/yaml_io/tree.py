"""The legacy Agents/ tree as plain data: what the loader reads, the importer stores and
the exporter writes. docs/yaml-format.md describes the files themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from accounts.models import AgentRole
from orchestration.models import Risk, SubtaskStatus

FORMAT_VERSION = 1
AGENTS_DIR = "Agents"
MANIFEST_NAME = "manifest.yml"
LOGS_DIR = "logs"
LOG_SUFFIX = ".yml"

# The legacy files spell statuses with hyphens; the database uses TextChoices values
# (plain strings here, so trees compare and serialise like the data they hold).
STATUS_FROM_LEGACY: dict[str, str] = {
    "pending": SubtaskStatus.PENDING.value,
    "in-progress": SubtaskStatus.IN_PROGRESS.value,
    "testing": SubtaskStatus.TESTING.value,
    "ready-for-review": SubtaskStatus.READY_FOR_REVIEW.value,
    "completed": SubtaskStatus.COMPLETED.value,
    "blocked": SubtaskStatus.BLOCKED.value,
    "failed": SubtaskStatus.FAILED.value,
    "retrying": SubtaskStatus.RETRYING.value,
}
STATUS_TO_LEGACY: dict[str, str] = {ours: legacy for legacy, ours in STATUS_FROM_LEGACY.items()}
ROLES: tuple[str, ...] = tuple(AgentRole.values)
RISKS: tuple[str, ...] = tuple(Risk.values)


def manifest_path(root: Path) -> Path:
    return root / AGENTS_DIR / MANIFEST_NAME


def logs_path(root: Path) -> Path:
    return root / AGENTS_DIR / LOGS_DIR


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    message: str


@dataclass(frozen=True)
class LegacySubtask:
    """One manifest entry merged with its log file, in the database's vocabulary."""

    key: str
    title: str
    status: str
    owner_role: str = AgentRole.DEVELOPER.value
    risk: str = Risk.LOW.value
    depends_on: tuple[str, ...] = ()
    estimate_hours: Decimal | None = None
    description: str = ""
    requirements_developer: str = ""
    requirements_tester: str = ""
    blocked_reason: str = ""
    attempts: int = 0
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True)
class LegacyTree:
    subtasks: tuple[LegacySubtask, ...]
