"""YAML read into plain values that remember which line each mapping, key and item is on.

PyYAML's constructed values forget their position, so a file is composed into nodes (which
carry marks) and built into dict/list subclasses holding 1-based line numbers; the schema
checks can then name the line of every problem they find.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, printed as `path:line: message` like a compiler."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class _Unreadable:
    def __repr__(self) -> str:
        return "<unreadable>"


# Stands for a value the reader already reported; the schema checks skip it rather than
# report the same line a second time as a value of the wrong type.
UNREADABLE = _Unreadable()


class LocatedMap(dict):
    """A mapping that knows its own line and the line of each key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    """A sequence that knows its own line and the line of each item."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, shown: str) -> None:
        self.loader = loader
        self.shown = shown
        self.problems: list[Problem] = []
        self.built: dict[int, Any] = {}
        self.building: set[int] = set()

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.shown, _line(node), message))

    def build(self, node: yaml.Node) -> Any:
        # Aliases make composed documents graphs; building each node once keeps an
        # alias-heavy file from expanding exponentially, and a node met again while it is
        # still being built is a self-referencing alias no value can hold.
        if id(node) in self.built:
            return self.built[id(node)]
        if id(node) in self.building:
            self.problem(node, "an alias refers to the node that contains it")
            return UNREADABLE
        self.building.add(id(node))
        if isinstance(node, yaml.MappingNode):
            value = self._mapping(node)
        elif isinstance(node, yaml.SequenceNode):
            value = self._sequence(node)
        else:
            value = self._scalar(node)
        self.building.discard(id(node))
        self.built[id(node)] = value
        return value

    def _mapping(self, node: yaml.MappingNode) -> LocatedMap | _Unreadable:
        if node.tag != MAP_TAG:
            self.problem(node, f"unsupported tag {node.tag}")
            return UNREADABLE
        mapping = LocatedMap(_line(node))
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                self.problem(key_node, "merge keys (<<) are not supported; write the keys out")
                continue
            key = self.build(key_node)
            if key is UNREADABLE:
                continue
            if not isinstance(key, str):
                self.problem(key_node, f"keys must be text, got {key!r}")
                continue
            if key in mapping:
                first = mapping.key_lines[key]
                self.problem(key_node, f"duplicate key {key!r} (first on line {first})")
                continue
            mapping[key] = self.build(value_node)
            mapping.key_lines[key] = _line(key_node)
        return mapping

    def _sequence(self, node: yaml.SequenceNode) -> LocatedList | _Unreadable:
        if node.tag != SEQ_TAG:
            self.problem(node, f"unsupported tag {node.tag}")
            return UNREADABLE
        items = LocatedList(_line(node))
        for item_node in node.value:
            items.append(self.build(item_node))
            items.item_lines.append(_line(item_node))
        return items

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        # Timestamps stay text: the schema parses them itself so that an impossible date
        # is reported as a bad datetime on its line rather than crashing the constructor.
        if node.tag == TIMESTAMP_TAG:
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.problem(node, f"cannot read value {node.value!r}: {problem}")
            return UNREADABLE


def _syntax_problem(shown: str, exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        # PyYAML phrases some problems as the second half of their context ("but found …").
        message = (exc.problem or "invalid YAML").removeprefix("but ")
        if exc.context:
            where = f" started on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            message += f" ({exc.context}{where})"
        return Problem(shown, mark.line + 1 if mark else None, f"YAML syntax error: {message}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        character = chr(exc.character) if isinstance(exc.character, int) else exc.character
        return Problem(shown, line, f"YAML syntax error: {exc.reason} ({character!r})")
    return Problem(shown, None, f"YAML syntax error: {exc}")


def read_located(path: Path, shown: str) -> tuple[Any, list[Problem]]:
    """Read one YAML file into located values; problems name `shown` as the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, None, f"not UTF-8 text (byte {exc.start}: {exc.reason})")]
    except OSError as exc:
        return None, [Problem(shown, None, f"cannot read: {exc.strerror}")]
    try:
        # The reader checks every character while it is being created, hence inside the try.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(shown, exc, text)]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        builder = _Builder(loader, shown)
        return builder.build(node), builder.problems
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(shown, exc, text)]
    finally:
        loader.dispose()
