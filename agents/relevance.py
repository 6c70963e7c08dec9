"""Which files of the repository an agent should look at first, with a snippet of each.

Chosen from what the briefing already knows, without searching file contents: paths named
in the requirements, the files of failing tests, the files the branch changed so far, the
files review comments point at, and files whose names match words of the requirements.
Three git commands at most per briefing (refs, diff, contents); the tree listing of a
commit is cached, since a commit never changes.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

import gitops
from orchestration.models import Project

MAX_FILES = 8
MAX_FILE_BYTES = 256 * 1024
MAX_DIFF_CHARS = 400_000
SNIPPET_CONTEXT = 3
SNIPPET_MAX_LINES = 80
HEAD_LINES = 40
SCORES = {"named": 10, "failing test": 9, "review comment": 9, "changed": 8, "name match": 4}

_PATH_WORD = re.compile(r"[\w.-]+(?:/[\w.-]+)*\.\w{1,6}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_STOP_WORDS = (
    "the and for with that this from when must should will into only then than each "
    "test tests code file files make makes return returns value values given about "
    "have has are was were not but all any can new add use used using"
)
_STOP = frozenset(_STOP_WORDS.split(" "))


@dataclass
class Hints:
    """What points at files: requirement texts, failing tests, review comment anchors."""

    texts: list[str]
    failing_tests: list[dict] = field(default_factory=list)  # {"file", "classname", "name"}
    review_anchors: list[dict] = field(default_factory=list)  # {"path", "line"}


@dataclass
class Candidate:
    path: str
    score: int = 0
    why: list[str] = field(default_factory=list)
    lines: set[int] = field(default_factory=set)  # 1-based lines worth showing

    def add(self, reason: str) -> None:
        if reason not in self.why:
            self.why.append(reason)
            self.score += SCORES[reason]


def relevant_files(
    project: Project, branch: str, hints: Hints, *, limit: int = MAX_FILES
) -> tuple[list[dict], str]:
    """Return ([{path, why, snippet}], problem); the problem is "" unless git failed."""
    repo = _repository_path(project)
    if repo is None:
        return [], "the project's repository is not on this server"
    try:
        head, base = _resolve(repo, branch, project.default_branch)
        if head is None:
            return [], f"neither {branch} nor {project.default_branch} exists"
        diffs = _diff_by_file(repo, base, head) if base and base != head else {}
        index = tree_index(repo, head)
        chosen = _rank(index, diffs, hints)[:limit]
        contents = _read_blobs(repo, head, [c.path for c in chosen if c.path not in diffs])
    except gitops.GitError as exc:
        return [], f"git: {exc}"
    words = _keywords(hints)
    return [_entry(c, diffs.get(c.path), contents.get(c.path), words) for c in chosen], ""


def _repository_path(project: Project) -> Path | None:
    # Read-only: a briefing never clones. Same locations as orchestration.gitflow.repository.
    if project.repo_path:
        path = Path(project.repo_path).expanduser()
    else:
        path = Path(settings.DATA_DIR) / "repos" / str(project.workspace.code) / project.slug
    return path if path.is_dir() else None


def _resolve(repo: Path, branch: str, default: str) -> tuple[str | None, str | None]:
    """The branch's head (falling back to the default branch) and the default branch's."""
    refs = [f"refs/heads/{name}" for name in dict.fromkeys([branch, default])]
    result = gitops.run_git(repo, "for-each-ref", "--format=%(objectname) %(refname)", *refs)
    found = dict(line.split(" ")[::-1] for line in result.stdout.splitlines() if line)
    base = found.get(f"refs/heads/{default}")
    return found.get(f"refs/heads/{branch}", base), base


def _diff_by_file(repo: Path, base: str, head: str) -> dict[str, str]:
    """The branch's changes since it forked from the default branch, split per file."""
    text = gitops.diff(repo, base, head)[:MAX_DIFF_CHARS]
    files: dict[str, str] = {}
    for chunk in re.split(r"(?m)^(?=diff --git )", text):
        match = re.match(r"diff --git a/(.+?) b/(.+)", chunk)
        if match:
            files[match.group(2)] = chunk.rstrip("\n")
    return files


@dataclass(frozen=True)
class TreeIndex:
    paths: frozenset[str]
    by_stem: dict[str, tuple[str, ...]]  # lower-cased file name without extension → paths
    by_name: dict[str, tuple[str, ...]]  # file name → paths


_TREES: OrderedDict[tuple[str, str], TreeIndex] = OrderedDict()
_TREES_LOCK = threading.Lock()
_TREES_KEPT = 32


def tree_index(repo: Path, commit: str) -> TreeIndex:
    """The files of `commit`, indexed by name; cached per commit (commits never change)."""
    key = (str(repo), commit)
    with _TREES_LOCK:
        if key in _TREES:
            _TREES.move_to_end(key)
            return _TREES[key]
    listing = gitops.run_git(repo, "ls-tree", "-r", "-z", "--name-only", commit).fields()
    stems: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for path in listing:
        name = path.rsplit("/", 1)[-1]
        names.setdefault(name, []).append(path)
        stems.setdefault(name.split(".", 1)[0].lower(), []).append(path)
    index = TreeIndex(
        paths=frozenset(listing),
        by_stem={k: tuple(v) for k, v in stems.items()},
        by_name={k: tuple(v) for k, v in names.items()},
    )
    with _TREES_LOCK:
        _TREES[key] = index
        while len(_TREES) > _TREES_KEPT:
            _TREES.popitem(last=False)
    return index


def _rank(index: TreeIndex, diffs: dict[str, str], hints: Hints) -> list[Candidate]:
    found: dict[str, Candidate] = {}

    def mark(path: str, reason: str, line: int | None = None) -> None:
        if path not in index.paths and path not in diffs:
            return
        candidate = found.setdefault(path, Candidate(path))
        candidate.add(reason)
        if line:
            candidate.lines.add(line)

    for text in hints.texts:
        for word in _PATH_WORD.findall(text):
            for path in _paths_named(index, word):
                mark(path, "named")
    for case in hints.failing_tests:
        for path in _test_paths(case):
            mark(path, "failing test")
    for anchor in hints.review_anchors:
        mark(anchor["path"], "review comment", anchor.get("line"))
    for path in diffs:
        mark(path, "changed")
    for word in _keywords(hints):
        for path in index.by_stem.get(word.lower(), ())[:3]:
            mark(path, "name match")
    return sorted(found.values(), key=lambda c: (-c.score, c.path))


def _paths_named(index: TreeIndex, word: str) -> tuple[str, ...]:
    word = word.removeprefix("./")
    if word in index.paths:
        return (word,)
    return index.by_name.get(word.rsplit("/", 1)[-1], ())[:3]


def _test_paths(case: dict) -> list[str]:
    paths = [case["file"]] if case.get("file") else []
    classname = case.get("classname") or ""
    if classname:
        # pytest's JUnit classnames are dotted modules, sometimes with a class at the end.
        parts = classname.split(".")
        paths += ["/".join(parts) + ".py", "/".join(parts[:-1]) + ".py"]
    return paths


def _keywords(hints: Hints) -> list[str]:
    """Identifiers and words of the requirements and the names of failing tests."""
    words = dict.fromkeys(case["name"] for case in hints.failing_tests if case.get("name"))
    for text in hints.texts:
        for word in _IDENTIFIER.findall(text):
            if word.lower() not in _STOP and len(word) >= 4:
                words.setdefault(word)
    return list(words)[:60]


def _read_blobs(repo: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """Contents of `paths` at `commit` in one `git cat-file --batch`; binaries left out.

    Every path asked for is in the commit's tree (the ranking only keeps those), so each
    answer starts with a header line, and the marker in it finds the objects again even
    where a file's bytes were not UTF-8.
    """
    if not paths:
        return {}
    marker = "@@codemaestro-blob@@"
    request = "".join(f"{commit}:{path}\n" for path in paths)
    result = gitops.run_git(
        repo, "cat-file", f"--batch=%(objecttype) %(objectsize) {marker}", stdin=request
    )
    pieces = re.split(rf"(?m)^(\w+) (\d+) {re.escape(marker)}\n", result.stdout)
    contents: dict[str, str] = {}
    for path, kind, size, body in zip(
        paths, pieces[1::3], pieces[2::3], pieces[3::3], strict=False
    ):
        # Git ends each object with a newline of its own.
        body = body[:-1] if body.endswith("\n") else body
        if kind == "blob" and int(size) <= MAX_FILE_BYTES and "\x00" not in body[:8000]:
            contents[path] = body
    return contents


def _entry(candidate: Candidate, diff: str | None, text: str | None, words: list[str]) -> dict:
    if diff is not None:
        lines = diff.splitlines()
        snippet = "\n".join(lines[:SNIPPET_MAX_LINES])
        if len(lines) > SNIPPET_MAX_LINES:
            snippet += f"\n… {len(lines) - SNIPPET_MAX_LINES} more lines of diff"
    else:
        snippet = _snippet(text or "", candidate.lines, words)
    return {"path": candidate.path, "why": candidate.why, "snippet": snippet}


def _snippet(text: str, anchors: set[int], words: list[str]) -> str:
    """Numbered lines around the anchors and the lines that mention a keyword."""
    lines = text.splitlines()
    wanted = set(anchors)
    if words:
        pattern = re.compile("|".join(re.escape(w) for w in words))
        wanted |= {n for n, line in enumerate(lines, 1) if pattern.search(line)}
    if not wanted:
        wanted = set(range(1, min(HEAD_LINES, len(lines)) + 1))
    shown: list[int] = []
    for n in sorted(wanted):
        for m in range(max(1, n - SNIPPET_CONTEXT), min(len(lines), n + SNIPPET_CONTEXT) + 1):
            if not shown or m > shown[-1]:
                shown.append(m)
        if len(shown) >= SNIPPET_MAX_LINES:
            break
    out: list[str] = []
    for position, n in enumerate(shown[:SNIPPET_MAX_LINES]):
        if position and n != shown[position - 1] + 1:
            out.append("…")
        out.append(f"{n:>5}| {lines[n - 1]}")
    return "\n".join(out)
