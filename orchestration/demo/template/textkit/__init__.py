"""textkit: small text helpers, the demo project CodeMaestro's agents work on."""

from textkit.words import title_case, word_count

__all__ = ["title_case", "word_count"]
