"""Orion's output: an FRD and a manifest of subtasks, validated before anything is created."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from orchestration.errors import InvalidInput

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["frd", "subtasks"],
    "additionalProperties": False,
    "properties": {
        "frd": {"type": "string", "minLength": 1},
        "subtasks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["key", "title", "requirements"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$"},
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": {"type": "string"},
                    "requirements": {
                        "type": "object",
                        "required": ["developer", "tester"],
                        "additionalProperties": False,
                        "properties": {
                            "developer": {"type": "string", "minLength": 1},
                            "tester": {"type": "string", "minLength": 1},
                        },
                    },
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                    "risk": {"enum": ["low", "medium", "high"]},
                    # Who implements: Devon by default; DevOps for Dockerfiles and CI.
                    "owner": {"enum": ["developer", "devops"]},
                    "estimate_hours": {"type": "number", "minimum": 0},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class PlannedSubtask:
    key: str
    title: str
    description: str
    developer: str
    tester: str
    depends_on: tuple[str, ...]
    risk: str
    estimate_hours: float | None
    owner: str = "developer"


@dataclass(frozen=True)
class Manifest:
    frd: str
    subtasks: tuple[PlannedSubtask, ...]


def parse_manifest(raw: Any) -> Manifest:
    """Validate Orion's output (a dict or JSON text); every problem is named in one error."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"manifest is not valid JSON: {exc}") from None
    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    ]
    if not problems:
        problems = _graph_problems(raw["subtasks"])
    if problems:
        raise InvalidInput("invalid manifest: " + "; ".join(problems), problems=problems)
    return Manifest(
        frd=raw["frd"],
        subtasks=tuple(
            PlannedSubtask(
                key=item["key"],
                title=item["title"],
                description=item.get("description", ""),
                developer=item["requirements"]["developer"],
                tester=item["requirements"]["tester"],
                depends_on=tuple(item.get("depends_on", ())),
                risk=item.get("risk", "low"),
                estimate_hours=item.get("estimate_hours"),
                owner=item.get("owner", "developer"),
            )
            for item in raw["subtasks"]
        ),
    )


def _graph_problems(items: list[dict]) -> list[str]:
    keys = [item["key"] for item in items]
    problems = [
        f"duplicate subtask key {key!r}" for key in sorted(set(keys)) if keys.count(key) > 1
    ]
    known = set(keys)
    for item in items:
        for dep in item.get("depends_on", ()):
            if dep not in known:
                problems.append(f"{item['key']} depends on unknown subtask {dep!r}")
            elif dep == item["key"]:
                problems.append(f"{item['key']} depends on itself")
    if not problems:
        cycle = _find_cycle({item["key"]: list(item.get("depends_on", ())) for item in items})
        if cycle:
            problems.append("dependency cycle: " + " → ".join(cycle))
    return problems


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (found := visit(node)):
            return found
    return None


REFINEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["requirements"],
    "properties": {
        "requirements": MANIFEST_SCHEMA["properties"]["subtasks"]["items"]["properties"][
            "requirements"
        ],
        "acceptance_criteria": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
}


@dataclass(frozen=True)
class Refinement:
    developer: str
    tester: str
    acceptance_criteria: tuple[str, ...]


def parse_refinement(raw: Any) -> Refinement:
    """The product manager's sharper requirements (and acceptance criteria) for one subtask."""
    validator = jsonschema.Draft202012Validator(REFINEMENT_SCHEMA)
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(raw)
    ]
    if problems:
        raise InvalidInput("invalid refinement: " + "; ".join(problems), problems=problems)
    criteria = tuple(raw.get("acceptance_criteria", ()))
    return Refinement(
        developer=raw["requirements"]["developer"],
        tester=raw["requirements"]["tester"],
        acceptance_criteria=criteria,
    )
