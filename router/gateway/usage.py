"""Token usage of an answer, read the same way from a JSON body and from a stream's events.

Owns the usage fields the router accounts (input, output, prompt-cache reads and writes) and how they are
read. One parser for both paths: a stream's ``message_start`` carries the same ``usage`` object as a JSON
answer, and ``message_delta`` carries cumulative totals, so every field present in a later event replaces
the earlier value. Cost, budgets and metrics all take the dict this module returns.
"""

from __future__ import annotations

from typing import Any

import msgspec

FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Answer(msgspec.Struct):
    usage: _Usage | None = None


_answer_decoder = msgspec.json.Decoder(_Answer)


def empty() -> dict[str, int]:
    return dict.fromkeys(FIELDS, 0)


def read_json(body: bytes) -> dict[str, int] | None:
    """Usage of a JSON answer, or None when the body is not a JSON object at all (a malformed answer).

    msgspec still checks the whole document's syntax while it skips the fields other than ``usage``, so this
    one decode is both the well-formedness check of a 200 answer and its usage read."""
    try:
        usage = _answer_decoder.decode(body).usage
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if usage is None:
        return {}
    return {name: getattr(usage, name) or 0 for name in FIELDS}


def of_json(body: bytes) -> dict[str, int]:
    """Usage of a JSON answer; empty on a body without it (or not JSON)."""
    return read_json(body) or {}


def merge_event(into: dict[str, int], event: str | None, decoded: Any) -> None:
    """Fold one decoded stream event's usage into ``into`` (``message_start`` or ``message_delta``)."""
    if not isinstance(decoded, dict):
        return
    if event == "message_start":
        message = decoded.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
    else:
        usage = decoded.get("usage")
    if not isinstance(usage, dict):
        return
    for name in FIELDS:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            into[name] = value
