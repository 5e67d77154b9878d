"""Token usage of a chat completion, in the router's accounting fields (``router.gateway.usage.FIELDS``).

OpenAI's ``usage.prompt_tokens`` includes the prompt-cache reads (``prompt_tokens_details.cached_tokens``);
the router's ``input_tokens`` does not (cache reads are priced apart), so input = prompt - cached. The
format has no cache-write count: ``cache_creation_input_tokens`` stays 0. One reader for both paths: the
JSON answer's ``usage`` and the stream's final usage chunk are the same object.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Details(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _Details | None = None


class _Answer(msgspec.Struct):
    usage: _Usage | None = None


_answer_decoder = msgspec.json.Decoder(_Answer)


def _fields(prompt: int, completion: int, cached: int) -> dict[str, int]:
    cached = min(max(cached, 0), max(prompt, 0))
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": max(completion, 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def read_json(body: bytes) -> dict[str, int] | None:
    """Usage of a JSON chat completion, or None when the body is not a JSON object (a malformed answer);
    ``{}`` for an answer without usage. Like ``router.gateway.usage.read_json``, the one decode is also the
    answer's well-formedness check."""
    try:
        found = _answer_decoder.decode(body).usage
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if found is None:
        return {}
    details = found.prompt_tokens_details
    cached = (details.cached_tokens if details is not None else None) or 0
    return _fields(found.prompt_tokens or 0, found.completion_tokens or 0, cached)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def merge_chunk(into: dict[str, int], usage: dict[str, Any]) -> None:
    """Fold a stream chunk's decoded ``usage`` object into ``into`` (every field is replaced: the usage
    chunk carries the totals)."""
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    into.update(_fields(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")), cached))
