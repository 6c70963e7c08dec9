"""Reading and validating a legacy Agents/ tree.

Every file is checked completely and every problem is collected with its file and line, so
one run tells the user everything to fix; a tree with any problem is refused as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from orchestration.yaml_io.located import (
    UNREADABLE,
    LocatedList,
    LocatedMap,
    Problem,
    read_located,
)
from orchestration.yaml_io.tree import (
    FORMAT_VERSION,
    LOG_SUFFIX,
    RISKS,
    ROLES,
    STATUS_FROM_LEGACY,
    HistoryEntry,
    LegacySubtask,
    LegacyTree,
    logs_path,
    manifest_path,
)

# Ids become file names (logs/<id>.yml) and Subtask.key (60 characters), hence this shape.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,59}")
MAX_TITLE = 200
MAX_ATTEMPTS = 2**31 - 1
MAX_ESTIMATE = Decimal("99999.99")  # Subtask.estimate_hours: 7 digits, 2 decimal places

MANIFEST_KEYS = ("version", "subtasks")
SUBTASK_KEYS = (
    "id",
    "title",
    "status",
    "owner",
    "risk",
    "estimate_hours",
    "depends_on",
    "description",
)
SUBTASK_REQUIRED = ("id", "title", "status")
LOG_KEYS = ("requirements", "blocked_reason", "attempts", "history")
REQUIREMENT_KEYS = ("developer", "tester")
HISTORY_KEYS = ("at", "actor", "message")


class TreeInvalid(Exception):
    """The tree has problems; `problems` lists all of them, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


class _Checker:
    """Schema checks for one file: each records what is wrong and returns a usable default,
    so that checking goes on and later problems are found in the same run."""

    def __init__(self, shown: str, problems: list[Problem]) -> None:
        self.shown = shown
        self.problems = problems

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.shown, line, message))

    def wrong(self, line: int, expected: str, value: Any) -> None:
        """Report a value of the wrong type, unless the reader already reported it."""
        if value is not UNREADABLE:
            self.problem(line, f"{expected}, got {_kind(value)}")

    def mapping(self, value: Any, line: int, what: str) -> LocatedMap | None:
        if isinstance(value, LocatedMap):
            return value
        if value is not None or what != "log":
            self.wrong(line, f"{what} must be a mapping", value)
        return None

    def keys(
        self, mapping: LocatedMap, allowed: tuple[str, ...], required: tuple[str, ...], what: str
    ) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem(
                    mapping.line_of(key),
                    f"unknown key {key!r} in {what} (allowed: {', '.join(allowed)})",
                )
        for key in required:
            if key not in mapping:
                self.problem(mapping.line, f"{what} is missing required key {key!r}")

    def text(self, mapping: LocatedMap, key: str, *, required: bool = False) -> str:
        value = mapping.get(key)
        if value is None and not required:
            return ""  # an empty `key:` in a hand-written file means "nothing"
        if isinstance(value, str) and (value.strip() or not required):
            return value
        if key in mapping:
            wanted = "non-empty text" if required else "text"
            self.wrong(mapping.line_of(key), f"{key} must be {wanted}", value)
        return ""

    def identifier(self, value: Any, line: int, what: str) -> str | None:
        # Hand-written manifests often number subtasks (`id: 12`): a bare integer is an id.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.wrong(line, f"{what} must be text", value)
            return None
        if not ID_PATTERN.fullmatch(value):
            self.problem(
                line,
                f"{what} {value!r} is not a valid id: 1-60 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
            )
            return None
        return value

    def choice(
        self, mapping: LocatedMap, key: str, choices: dict[str, str], default: str = ""
    ) -> str:
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, str) and value in choices:
            return choices[value]
        line = mapping.line_of(key)
        if not isinstance(value, str):
            self.wrong(line, f"{key} must be text", value)
            return default
        message = f"{key} {value!r} is not one of: {', '.join(choices)}"
        if value.replace("_", "-") in choices:
            message += f" (legacy files spell it {value.replace('_', '-')!r})"
        self.problem(line, message)
        return default

    def count(self, mapping: LocatedMap, key: str) -> int:
        value = mapping.get(key)
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ATTEMPTS:
            return value
        self.wrong(mapping.line_of(key), f"{key} must be a whole number of 0 or more", value)
        return 0

    def estimate(self, mapping: LocatedMap, key: str) -> Decimal | None:
        value = mapping.get(key)
        if value is None:
            return None
        hours = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                hours = Decimal(str(value))
            except InvalidOperation:
                hours = None
        # The column keeps two decimals: refusing more keeps the round trip exact.
        valid = (
            hours is not None
            and hours.is_finite()
            and 0 <= hours <= MAX_ESTIMATE
            and hours.normalize().as_tuple().exponent >= -2
        )
        if not valid:
            self.wrong(
                mapping.line_of(key),
                f"{key} must be a number of hours from 0 to {MAX_ESTIMATE} with at most 2 decimals",
                value,
            )
            return None
        return hours.quantize(Decimal("0.01"))

    def timestamp(self, mapping: LocatedMap, key: str) -> datetime | None:
        value = mapping.get(key)
        line = mapping.line_of(key)
        if not isinstance(value, str):
            self.wrong(line, f"{key} must be an ISO 8601 datetime", value)
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.problem(
                line, f"{key} {value!r} is not an ISO 8601 datetime like 2024-03-01T09:30:00Z"
            )
            return None
        if ":" not in value:
            self.problem(line, f"{key} {value!r} is a date without a time of day")
            return None
        # A time without an offset is ambiguous; guessing one would shift the history.
        if parsed.tzinfo is None:
            self.problem(line, f"{key} {value!r} has no time zone: add Z or an offset like +02:00")
            return None
        return parsed


@dataclass
class _Entry:
    """A valid-id manifest entry, with the lines the cross-file checks point at."""

    subtask: LegacySubtask
    line: int
    dependency_lines: tuple[int, ...]


def _check_subtask(check: _Checker, item: Any, line: int) -> _Entry | None:
    mapping = check.mapping(item, line, "each subtask")
    if mapping is None:
        return None
    check.keys(mapping, SUBTASK_KEYS, SUBTASK_REQUIRED, "subtask")
    key = None
    if "id" in mapping:
        key = check.identifier(mapping["id"], mapping.line_of("id"), "id")
    title = check.text(mapping, "title", required=True)
    if len(title) > MAX_TITLE:
        check.problem(mapping.line_of("title"), f"title is longer than {MAX_TITLE} characters")
    depends_on, lines = _check_dependencies(check, mapping)
    subtask = LegacySubtask(
        key=key or "",
        title=title,
        status=check.choice(mapping, "status", STATUS_FROM_LEGACY),
        owner_role=check.choice(mapping, "owner", {r: r for r in ROLES}, "developer"),
        risk=check.choice(mapping, "risk", {r: r for r in RISKS}, "low"),
        depends_on=depends_on,
        estimate_hours=check.estimate(mapping, "estimate_hours"),
        description=check.text(mapping, "description"),
    )
    return _Entry(subtask, mapping.line_of("id"), lines) if key else None


def _check_dependencies(
    check: _Checker, mapping: LocatedMap
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    value = mapping.get("depends_on")
    if value is None:
        return (), ()
    if not isinstance(value, LocatedList):
        check.wrong(mapping.line_of("depends_on"), "depends_on must be a list of ids", value)
        return (), ()
    ids: list[str] = []
    lines: list[int] = []
    for item, line in zip(value, value.item_lines, strict=True):
        dependency = check.identifier(item, line, "depends_on entry")
        if dependency is None:
            continue
        if dependency in ids:
            check.problem(line, f"depends_on lists {dependency!r} twice")
            continue
        ids.append(dependency)
        lines.append(line)
    return tuple(ids), tuple(lines)


def _check_manifest(root: Path, problems: list[Problem]) -> list[_Entry] | None:
    """Return the entries with valid ids, or None when the ids cannot be known at all."""
    path = manifest_path(root)
    check = _Checker(str(path), problems)
    if not path.is_file():
        check.problem(None, "file not found")
        return None
    data, found = read_located(path, check.shown)
    problems.extend(found)
    if data is None and found:
        return None
    manifest = check.mapping(data, 1, "the manifest")
    if manifest is None:
        return None
    check.keys(manifest, MANIFEST_KEYS, MANIFEST_KEYS, "the manifest")
    version = manifest.get("version", FORMAT_VERSION)
    if version is not UNREADABLE and (version != FORMAT_VERSION or isinstance(version, bool)):
        check.problem(
            manifest.line_of("version"),
            f"version {version!r} is not supported; this importer reads version {FORMAT_VERSION}",
        )
    items = manifest.get("subtasks")
    if not isinstance(items, LocatedList):
        if "subtasks" in manifest:
            check.wrong(manifest.line_of("subtasks"), "subtasks must be a list", items)
        return None
    entries = [
        _check_subtask(check, item, line)
        for item, line in zip(items, items.item_lines, strict=True)
    ]
    return _check_graph(check, [entry for entry in entries if entry is not None])


def _check_graph(check: _Checker, entries: list[_Entry]) -> list[_Entry]:
    """Refuse duplicate ids, dependencies on unknown ids and cycles; return the unique ids."""
    unique: dict[str, _Entry] = {}
    for entry in entries:
        first = unique.get(entry.subtask.key)
        if first is not None:
            check.problem(
                entry.line,
                f"duplicate id {entry.subtask.key!r} (first defined on line {first.line})",
            )
            continue
        unique[entry.subtask.key] = entry
    graph: dict[str, list[tuple[str, int]]] = {}
    for key, entry in unique.items():
        graph[key] = []
        for dependency, line in zip(entry.subtask.depends_on, entry.dependency_lines, strict=True):
            if dependency in unique:
                graph[key].append((dependency, line))
            else:
                check.problem(line, f"depends on unknown id {dependency!r}")
    for cycle, line in find_cycles(graph):
        check.problem(line, f"dependency cycle: {' → '.join(cycle)}")
    return list(unique.values())


def find_cycles(graph: dict[str, list[tuple[str, int]]]) -> list[tuple[list[str], int]]:
    """Depth-first search for back edges; each gives a cycle and the line of its closing edge.

    Iterative, so a long legacy dependency chain cannot exhaust Python's recursion limit.
    """
    state: dict[str, str] = {}
    found: list[tuple[list[str], int]] = []
    for start in graph:
        if start in state:
            continue
        path, stack = [start], [iter(graph[start])]
        state[start] = "open"
        while stack:
            for dependency, line in stack[-1]:
                if state.get(dependency) == "open":
                    found.append(([*path[path.index(dependency) :], dependency], line))
                elif dependency not in state:
                    state[dependency] = "open"
                    path.append(dependency)
                    stack.append(iter(graph[dependency]))
                    break
            else:
                state[path.pop()] = "done"
                stack.pop()
    return found


def _check_history(check: _Checker, log: LocatedMap) -> tuple[HistoryEntry, ...]:
    value = log.get("history")
    if value is None:
        return ()
    if not isinstance(value, LocatedList):
        check.wrong(log.line_of("history"), "history must be a list", value)
        return ()
    entries = []
    for item, line in zip(value, value.item_lines, strict=True):
        mapping = check.mapping(item, line, "each history entry")
        if mapping is None:
            continue
        check.keys(mapping, HISTORY_KEYS, HISTORY_KEYS, "history entry")
        at = check.timestamp(mapping, "at") if "at" in mapping else None
        actor = check.text(mapping, "actor")
        message = check.text(mapping, "message", required=True)
        if at is not None:
            entries.append(HistoryEntry(at=at, actor=actor, message=message))
    return tuple(entries)


def _check_log(path: Path, known_ids: set[str] | None, problems: list[Problem]) -> dict:
    """Return the log's fields for LegacySubtask; an empty file is an empty log."""
    check = _Checker(str(path), problems)
    key = path.name.removesuffix(LOG_SUFFIX)
    if known_ids is not None and key not in known_ids:
        check.problem(
            1, f"log file for unknown id {key!r}: no subtask with that id in the manifest"
        )
    data, found = read_located(path, check.shown)
    problems.extend(found)
    log = check.mapping(data, 1, "log")
    if log is None:
        return {}
    check.keys(log, LOG_KEYS, (), "log")
    requirements = log.get("requirements")
    fields: dict[str, Any] = {}
    if requirements is not None:
        requirements = check.mapping(requirements, log.line_of("requirements"), "requirements")
    if requirements is not None:
        check.keys(requirements, REQUIREMENT_KEYS, (), "requirements")
        fields["requirements_developer"] = check.text(requirements, "developer")
        fields["requirements_tester"] = check.text(requirements, "tester")
    fields["blocked_reason"] = check.text(log, "blocked_reason")
    fields["attempts"] = check.count(log, "attempts")
    fields["history"] = _check_history(check, log)
    return fields


def _check_logs(root: Path, known_ids: set[str] | None, problems: list[Problem]) -> dict[str, dict]:
    folder = logs_path(root)
    if not folder.is_dir():
        return {}
    logs = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".yaml":
            # Most likely a log under the wrong name: skipping it would lose its history.
            problems.append(Problem(str(path), None, "log files are named <id>.yml, not .yaml"))
        elif path.suffix == LOG_SUFFIX:
            logs[path.name.removesuffix(LOG_SUFFIX)] = _check_log(path, known_ids, problems)
    return logs


def load_tree(root: Path) -> LegacyTree:
    """Read and validate root/Agents; raise TreeInvalid listing every problem found."""
    problems: list[Problem] = []
    if not root.is_dir():
        raise TreeInvalid([Problem(str(root), None, "directory not found")])
    entries = _check_manifest(root, problems)
    known_ids = None if entries is None else {entry.subtask.key for entry in entries}
    logs = _check_logs(root, known_ids, problems)
    if problems:
        # Files in reading order, each file's problems by line: the order an editor shows.
        files = {path: index for index, path in enumerate(dict.fromkeys(p.path for p in problems))}
        problems.sort(key=lambda problem: (files[problem.path], problem.line or 0))
        raise TreeInvalid(problems)
    return LegacyTree(
        subtasks=tuple(
            replace(entry.subtask, **logs.get(entry.subtask.key, {})) for entry in entries or ()
        )
    )
