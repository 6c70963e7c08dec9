"""Keeping secret values out of everything that is written down.

Every value this process has seen in clear (decrypted by `Secret.reveal`, typed into a
form, loaded for a run or a briefing) is remembered, and `scrub` replaces it with
`******` wherever it shows up: log records (a filter on every handler, plus a record
factory for handlers configured elsewhere, such as pytest's), events, briefings, run
outputs and Django's error pages. Values are also matched in the forms other layers turn
them into (JSON and repr escaping, HTML escaping, URL encoding), because that is how they
appear in payloads, tracebacks and pages.

Values shorter than MIN_SCRUBBED_LENGTH are not matched: masking "1" or "abc" would
garble every text; the secrets service refuses such values for that reason.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

MASK = "******"
MIN_SCRUBBED_LENGTH = 6

_lock = threading.Lock()
_values: set[str] = set()
_seen_ciphertexts: set[str] = set()
# Compiled on first use after a change (a run reveals its secrets one by one), then
# swapped in whole, so readers never need the lock.
_pattern: re.Pattern[str] | None = None
_stale = False


def _variants(value: str) -> set[str]:
    forms = {
        value,
        value.strip(),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        html.escape(value),
        html.escape(value, quote=False),
        quote(value, safe=""),
        quote_plus(value, safe=""),
    }
    return {form for form in forms if len(form) >= MIN_SCRUBBED_LENGTH}


def remember(values: Iterable[str]) -> None:
    """Add values to those scrubbed from now on, in this process."""
    global _stale
    new: set[str] = set()
    for value in values:
        if isinstance(value, str) and len(value) >= MIN_SCRUBBED_LENGTH:
            new |= _variants(value)
    with _lock:
        new -= _values
        if new:
            _values.update(new)
            _stale = True


def _trie_pattern(values: Iterable[str]) -> str:
    """One regex matching any of the values, shaped as a trie.

    A plain alternation tries every value at every position of the text; the trie tries
    one branch per character, so scrubbing costs the same with 5 or 5,000 known values.
    Longer continuations come before a value's end, so the longest value matches.
    """
    root: dict = {}
    for value in values:
        node = root
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict) -> str:
        literal = []
        # Chains without a branch or an end become one literal (and no recursion: values
        # can be thousands of characters long).
        while len(node) == 1 and "" not in node:
            char, node = next(iter(node.items()))
            literal.append(re.escape(char))
        branches = [re.escape(char) + render(child) for char, child in node.items() if char]
        if not branches:
            body = ""
        elif len(branches) == 1:
            body = branches[0]
        else:
            body = "(?:" + "|".join(branches) + ")"
        if "" in node and body:
            body = f"(?:{body})?"
        return "".join(literal) + body

    return render(root)


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern, _stale
    if _stale:
        with _lock:
            if _stale:
                _pattern = re.compile(_trie_pattern(_values)) if _values else None
                _stale = False
    return _pattern


def remember_workspace(workspace_id: int) -> None:
    """Learn every secret value of a workspace (one query; only new ciphertexts decrypt).

    For texts built outside a run, such as briefings, whose process may never have
    revealed the secrets an agent could have echoed into the history.
    """
    from accounts.crypto import SecretUnreadable, decrypt
    from accounts.models import Secret

    ciphertexts = Secret.objects.filter(workspace_id=workspace_id).values_list(
        "ciphertext", flat=True
    )
    fresh = [c for c in ciphertexts if c not in _seen_ciphertexts]
    values = []
    for ciphertext in fresh:
        try:
            values.append(decrypt(ciphertext))
        except SecretUnreadable:
            continue  # rotate_secrets reports it; nothing here can read it either
    remember(values)
    with _lock:
        _seen_ciphertexts.update(fresh)


def forget_all() -> None:
    """Forget every remembered value (tests start from a clean process state)."""
    global _pattern, _stale
    with _lock:
        _values.clear()
        _seen_ciphertexts.clear()
        _pattern, _stale = None, False


def scrub(text: str) -> str:
    """The text with every known secret value replaced by `******`."""
    pattern = _current_pattern()
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def scrub_data(value: Any) -> Any:
    """Scrub every string inside JSON-like data (dicts, lists, tuples), keys included."""
    if _current_pattern() is None:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_data(key): scrub_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_data(item) for item in value)
    return value


# --- logging ---------------------------------------------------------------------------

_exception_formatter = logging.Formatter()
_factory_installed = False


def scrub_record(record: logging.LogRecord) -> None:
    """Rewrite a log record in place when its message or traceback holds a known value."""
    if _current_pattern() is None:
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed call; logging reports it in its own way later
        return
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        text = _exception_formatter.formatException(record.exc_info)
        clean = scrub(text)
        if clean != text:
            # Formatters print exc_text as is; dropping exc_info stops handlers that
            # format the exception themselves from printing the original message.
            record.exc_text, record.exc_info = clean, None
    elif record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def install_record_factory() -> None:
    """Scrub records as they are made, so handlers outside LOGGING never see a value."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


class ScrubSecretsFilter(logging.Filter):
    """The LOGGING filter on every handler; creating it also installs the record factory."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        install_record_factory()

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


# --- error pages -----------------------------------------------------------------------


def _scrubbed_variable(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    try:
        text = repr(value)
    except Exception:
        return value
    clean = scrub(text)
    return value if clean == text else clean


class ScrubbingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter (hides settings and variables named like keys), plus known values."""

    def get_safe_settings(self) -> dict[str, Any]:
        return scrub_data(super().get_safe_settings())

    def get_safe_request_meta(self, request) -> dict[str, Any]:
        return {k: _scrubbed_variable(v) for k, v in super().get_safe_request_meta(request).items()}

    def get_safe_cookies(self, request) -> dict[str, Any]:
        return {k: _scrubbed_variable(v) for k, v in super().get_safe_cookies(request).items()}

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if _current_pattern() is None or not hasattr(parameters, "lists"):
            return parameters
        clean = parameters.copy()
        for key, values in parameters.lists():
            clean.setlist(key, [scrub(v) if isinstance(v, str) else v for v in values])
        return clean

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, _scrubbed_variable(value)) for name, value in variables]


class ScrubbingExceptionReporter(ExceptionReporter):
    """Error pages and reports (DEBUG page, admin mails) with every known value masked.

    The exception's own message and the source lines are not covered by any filter hook,
    so the finished page is scrubbed as well.
    """

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if "exception_value" in data:
            data["exception_value"] = scrub(str(data["exception_value"]))
        return data

    def get_traceback_html(self) -> str:
        return scrub(str(super().get_traceback_html()))

    def get_traceback_text(self) -> str:
        return scrub(str(super().get_traceback_text()))
