"""What the demo agents know how to build on the demo repository (textkit).

Each entry is one small feature in two subtasks, with the tests Tara writes, the code Devon
writes, and — for the first subtask — a first attempt with a deliberate bug, so that the
retry loop can be watched turning red into green. Entries are plain data: the demo
executor writes these files into a real worktree and commits them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoStep:
    key: str
    title: str
    developer: str
    tester: str
    depends_on: tuple[str, ...]
    test_path: str
    test_code: str
    module_path: str
    code: str  # the module's full content after this step
    buggy_code: str = ""  # first attempt, when the demo scripts a failure


@dataclass(frozen=True)
class DemoFeature:
    name: str
    summary: str
    steps: tuple[DemoStep, ...]


SLUG_V1 = '''"""URL slugs."""

import re
import unicodedata


def slugify(text: str) -> str:
    """Lower-case ASCII words of `text` joined by hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return "-".join(words)
'''

SLUG_V1_BUGGY = '''"""URL slugs."""

import re
import unicodedata


def slugify(text: str) -> str:
    """Lower-case ASCII words of `text` joined by hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[A-Za-z0-9]+", ascii_text)
    return "-".join(words)
'''

SLUG_V2 = (
    SLUG_V1
    + '''

def unique_slug(text: str, taken: set[str]) -> str:
    """slugify(text), with -2, -3… appended until it is not in `taken`."""
    base = slugify(text) or "item"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug
'''
)

TRUNCATE_V1 = '''"""Shortening text for previews."""


def truncate_words(text: str, limit: int) -> str:
    """The first `limit` words of `text`, with an ellipsis when words were dropped."""
    if limit < 0:
        raise ValueError("limit must not be negative")
    words = text.split()
    if len(words) <= limit:
        return " ".join(words)
    return " ".join(words[:limit]) + "…"
'''

TRUNCATE_V1_BUGGY = '''"""Shortening text for previews."""


def truncate_words(text: str, limit: int) -> str:
    """The first `limit` words of `text`, with an ellipsis when words were dropped."""
    words = text.split()
    return " ".join(words[:limit]) + "…"
'''

TRUNCATE_V2 = (
    TRUNCATE_V1
    + '''

def truncate_chars(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary, ellipsis included."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    if not text[len(cut)].isspace():
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return cut.rstrip() + "…"
'''
)

CASE_V1 = '''"""Identifier case conversions."""

import re


def snake_case(text: str) -> str:
    """`HelloWorld`, `hello world` and `hello-world` all become `hello_world`."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\\1 \\2", text)
    return "_".join(word.lower() for word in re.findall(r"[A-Za-z0-9]+", spaced))
'''

CASE_V1_BUGGY = '''"""Identifier case conversions."""

import re


def snake_case(text: str) -> str:
    """`HelloWorld`, `hello world` and `hello-world` all become `hello_world`."""
    return "_".join(word.lower() for word in re.findall(r"[A-Za-z0-9]+", text))
'''

CASE_V2 = (
    CASE_V1
    + '''

def camel_case(text: str) -> str:
    """`hello_world` becomes `helloWorld`."""
    first, *rest = snake_case(text).split("_") or [""]
    return first + "".join(word.capitalize() for word in rest)
'''
)

CATALOGUE: tuple[DemoFeature, ...] = (
    DemoFeature(
        name="slug",
        summary="URL slugs for titles: slugify() and unique_slug().",
        steps=(
            DemoStep(
                key="slug-1",
                title="slugify(text)",
                developer="Add textkit/slug.py with slugify(text): lower-case ASCII words "
                "joined by hyphens; accents folded; punctuation dropped.",
                tester="Test that slugify lower-cases, folds accents, drops punctuation and "
                "collapses runs of separators.",
                depends_on=(),
                test_path="tests/test_slug.py",
                test_code="""from textkit.slug import slugify


def test_slugify_lower_cases_and_joins_words():
    assert slugify("Hello World") == "hello-world"


def test_slugify_folds_accents_and_drops_punctuation():
    assert slugify("Crème brûlée, s'il vous plaît!") == "creme-brulee-s-il-vous-plait"


def test_slugify_collapses_separators():
    assert slugify("  a -- b  ") == "a-b"
""",
                module_path="textkit/slug.py",
                code=SLUG_V1,
                buggy_code=SLUG_V1_BUGGY,
            ),
            DemoStep(
                key="slug-2",
                title="unique_slug(text, taken)",
                developer="Add unique_slug(text, taken) to textkit/slug.py: slugify, then "
                "append -2, -3… until the slug is not taken; 'item' for empty slugs.",
                tester="Test unique_slug with a free slug, a taken one, several taken, and "
                "an empty title.",
                depends_on=("slug-1",),
                test_path="tests/test_unique_slug.py",
                test_code="""from textkit.slug import unique_slug


def test_unique_slug_keeps_a_free_slug():
    assert unique_slug("Hello", set()) == "hello"


def test_unique_slug_counts_up_past_taken_ones():
    assert unique_slug("Hello", {"hello", "hello-2"}) == "hello-3"


def test_unique_slug_of_nothing_is_item():
    assert unique_slug("!!!", set()) == "item"
""",
                module_path="textkit/slug.py",
                code=SLUG_V2,
            ),
        ),
    ),
    DemoFeature(
        name="truncate",
        summary="Previews: truncate_words() and truncate_chars().",
        steps=(
            DemoStep(
                key="truncate-1",
                title="truncate_words(text, limit)",
                developer="Add textkit/truncate.py with truncate_words(text, limit): the first "
                "`limit` words, an ellipsis only when words were dropped, ValueError on a "
                "negative limit.",
                tester="Test short texts unchanged, long texts cut with an ellipsis, and a "
                "negative limit refused.",
                depends_on=(),
                test_path="tests/test_truncate_words.py",
                test_code="""import pytest

from textkit.truncate import truncate_words


def test_short_text_is_unchanged():
    assert truncate_words("one two", 5) == "one two"


def test_long_text_is_cut_with_an_ellipsis():
    assert truncate_words("one two three four", 2) == "one two…"


def test_negative_limit_is_refused():
    with pytest.raises(ValueError):
        truncate_words("one", -1)
""",
                module_path="textkit/truncate.py",
                code=TRUNCATE_V1,
                buggy_code=TRUNCATE_V1_BUGGY,
            ),
            DemoStep(
                key="truncate-2",
                title="truncate_chars(text, limit)",
                developer="Add truncate_chars(text, limit) to textkit/truncate.py: at most "
                "`limit` characters including the ellipsis, cut at a word boundary.",
                tester="Test a short text unchanged and a long text cut at a word boundary.",
                depends_on=("truncate-1",),
                test_path="tests/test_truncate_chars.py",
                test_code="""from textkit.truncate import truncate_chars


def test_short_text_is_unchanged():
    assert truncate_chars("hello", 10) == "hello"


def test_long_text_is_cut_at_a_word_boundary():
    assert truncate_chars("hello brave new world", 12) == "hello brave…"
""",
                module_path="textkit/truncate.py",
                code=TRUNCATE_V2,
            ),
        ),
    ),
    DemoFeature(
        name="case",
        summary="Identifier cases: snake_case() and camel_case().",
        steps=(
            DemoStep(
                key="case-1",
                title="snake_case(text)",
                developer="Add textkit/case.py with snake_case(text) that splits on spaces, "
                "hyphens and lower→upper case changes.",
                tester="Test snake_case on CamelCase, spaced and hyphenated input.",
                depends_on=(),
                test_path="tests/test_snake_case.py",
                test_code="""from textkit.case import snake_case


def test_camel_case_input():
    assert snake_case("HelloWorld") == "hello_world"


def test_spaced_and_hyphenated_input():
    assert snake_case("hello big-world") == "hello_big_world"
""",
                module_path="textkit/case.py",
                code=CASE_V1,
                buggy_code=CASE_V1_BUGGY,
            ),
            DemoStep(
                key="case-2",
                title="camel_case(text)",
                developer="Add camel_case(text) to textkit/case.py built on snake_case.",
                tester="Test camel_case on snake and spaced input.",
                depends_on=("case-1",),
                test_path="tests/test_camel_case.py",
                test_code="""from textkit.case import camel_case


def test_snake_input():
    assert camel_case("hello_world") == "helloWorld"


def test_spaced_input():
    assert camel_case("Hello big world") == "helloBigWorld"
""",
                module_path="textkit/case.py",
                code=CASE_V2,
            ),
        ),
    ),
)

STEPS_BY_KEY: dict[str, DemoStep] = {
    step.key: step for feature in CATALOGUE for step in feature.steps
}
