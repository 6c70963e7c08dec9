"""Counting and reshaping the words of a text."""

from __future__ import annotations


def word_count(text: str) -> int:
    """Return how many whitespace-separated words `text` contains."""
    return len(text.split())


def title_case(text: str) -> str:
    """Capitalise the first letter of every word and lower-case the rest."""
    return " ".join(word[:1].upper() + word[1:].lower() for word in text.split())
