"""Risk of a change set: rules on what it touches, its size, new routes, and what was declared.

Each rule that matches gives a tier and a reason; the highest tier wins and every reason is
kept, so the page can say why. A project overrides the defaults in its policy:

    "risk": {
        "rules": [{"glob": "billing/**", "tier": "high", "reason": "money"}],
        "replace_default_rules": false,
        "size": {"medium": 400, "high": 2000}
    }
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from orchestration.models import Project, Risk

ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}

DEFAULT_RULES: tuple[tuple[str, str, str], ...] = (
    ("**/migrations/**", Risk.HIGH, "database migration"),
    ("*.sql", Risk.HIGH, "SQL"),
    ("**/settings.py", Risk.HIGH, "settings"),
    ("**/settings/**", Risk.HIGH, "settings"),
    ("**/settings_*.py", Risk.HIGH, "settings"),
    (".github/workflows/**", Risk.HIGH, "CI configuration"),
    (".gitlab-ci.yml", Risk.HIGH, "CI configuration"),
    (".ci/**", Risk.HIGH, "CI configuration"),
    ("Jenkinsfile", Risk.HIGH, "CI configuration"),
    ("Dockerfile*", Risk.HIGH, "infrastructure"),
    ("compose*.y*ml", Risk.HIGH, "infrastructure"),
    ("docker-compose*.y*ml", Risk.HIGH, "infrastructure"),
    ("*.tf", Risk.HIGH, "infrastructure"),
    ("k8s/**", Risk.HIGH, "infrastructure"),
    ("helm/**", Risk.HIGH, "infrastructure"),
    ("**/auth/**", Risk.HIGH, "authentication code"),
    ("auth*.py", Risk.HIGH, "authentication code"),
    ("*_auth.py", Risk.HIGH, "authentication code"),
    ("*authentication*", Risk.HIGH, "authentication code"),
    ("**/permissions.py", Risk.HIGH, "authorisation code"),
    ("*security*", Risk.HIGH, "security code"),
    ("*crypto*", Risk.HIGH, "security code"),
    ("pyproject.toml", Risk.MEDIUM, "dependencies or build configuration"),
    ("requirements*.txt", Risk.MEDIUM, "dependencies"),
    ("package.json", Risk.MEDIUM, "dependencies"),
    ("**/templates/**", Risk.MEDIUM, "UI component"),
    ("*.html", Risk.MEDIUM, "UI component"),
    ("*.js", Risk.MEDIUM, "UI component"),
    ("*.ts", Risk.MEDIUM, "UI component"),
    ("*.tsx", Risk.MEDIUM, "UI component"),
    ("*.vue", Risk.MEDIUM, "UI component"),
    ("*.css", Risk.MEDIUM, "UI component"),
)
DEFAULT_SIZE = {"medium": 400, "high": 2000}

# Lines that add a URL route in the common Python and JavaScript web frameworks.
ROUTE_PATTERN = re.compile(
    r"^\+\s*(?:"
    r"(?:re_)?path\(\s*[rbf]?['\"]"  # Django urlpatterns
    r"|url\(\s*r?['\"]"  # old Django
    r"|router\.register\("  # DRF routers
    r"|@\w+\.(?:route|get|post|put|patch|delete|api_route)\("  # Flask / FastAPI
    r"|@action\("  # DRF extra actions
    r"|(?:app|router)\.(?:get|post|put|patch|delete|use)\(\s*['\"]"  # Express
    r")"
)


@dataclass(frozen=True)
class Reason:
    tier: str
    reason: str

    def as_json(self) -> dict:
        return {"tier": self.tier, "reason": self.reason}


@dataclass(frozen=True)
class Assessment:
    tier: str
    reasons: list[Reason]

    def reasons_json(self) -> list[dict]:
        return [reason.as_json() for reason in self.reasons]


def highest(tiers: Iterable[str]) -> str:
    return max(tiers, key=lambda tier: ORDER[tier], default=Risk.LOW)


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore-like glob: `**` crosses directories, `*` and `?` do not; a pattern
    without a slash matches the file's name in any directory."""
    anchored = "/" in pattern
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
        index += 1
    body = "".join(out)
    return re.compile(("" if anchored else "(?:.*/)?") + body + r"\Z")


def rules_for(project: Project) -> list[tuple[str, str, str]]:
    config = (project.policy or {}).get("risk") or {}
    custom = [
        (rule["glob"], rule.get("tier", Risk.HIGH), rule.get("reason", f"matches {rule['glob']}"))
        for rule in config.get("rules", [])
        if rule.get("glob") and rule.get("tier", Risk.HIGH) in ORDER
    ]
    if config.get("replace_default_rules"):
        return custom
    return custom + list(DEFAULT_RULES)


def size_limits(project: Project) -> dict[str, int]:
    config = (project.policy or {}).get("risk") or {}
    return {**DEFAULT_SIZE, **(config.get("size") or {})}


def classify(
    project: Project,
    files: list[dict],
    *,
    declared: Iterable[tuple[str, str]] = (),
    added_routes: Iterable[str] = (),
) -> Assessment:
    """Assess a change set from its files (Revision.files), routes and declared risks.

    `declared` holds (tier, who) pairs, e.g. the risk Orion gave each subtask.
    """
    reasons: list[Reason] = []
    rules = rules_for(project)
    for entry in files:
        paths = {entry["path"], entry.get("old_path") or entry["path"]}
        for glob, tier, why in rules:
            if any(glob_regex(glob).match(path) for path in paths):
                reasons.append(Reason(tier, f"{why}: {entry['path']}"))
                break
    reasons.extend(_size(project, files))
    for where in sorted(set(added_routes)):
        reasons.append(Reason(Risk.MEDIUM, f"new URL route in {where}"))
    for tier, who in declared:
        if tier in ORDER:
            reasons.append(Reason(tier, f"declared {tier} by {who}"))
    reasons.sort(key=lambda reason: -ORDER[reason.tier])
    return Assessment(tier=highest(r.tier for r in reasons), reasons=_compact(reasons))


def _size(project: Project, files: list[dict]) -> list[Reason]:
    changed = sum(entry["additions"] + entry["deletions"] for entry in files)
    limits = size_limits(project)
    if changed >= limits["high"]:
        return [Reason(Risk.HIGH, f"large change: {changed} lines (≥ {limits['high']})")]
    if changed >= limits["medium"]:
        return [Reason(Risk.MEDIUM, f"sizeable change: {changed} lines (≥ {limits['medium']})")]
    return []


def _compact(reasons: list[Reason], limit: int = 12) -> list[Reason]:
    """At most `limit` reasons, keeping the highest; the rest summed up in one line."""
    if len(reasons) <= limit:
        return reasons
    kept = reasons[: limit - 1]
    rest = reasons[limit - 1 :]
    return [*kept, Reason(rest[0].tier, f"and {len(rest)} more reasons")]


def routes_added(diff_text: str) -> list[str]:
    """Paths of files whose added lines declare a URL route (from a -U0 diff)."""
    found: list[str] = []
    current = ""
    for line in diff_text.split("\n"):
        if line.startswith("+++ "):
            current = line[6:] if line.startswith("+++ b/") else ""
        elif current and current not in found and ROUTE_PATTERN.match(line):
            found.append(current)
    return found
