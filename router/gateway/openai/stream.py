"""Reading a chat-completions SSE stream for the commit point and the relay (``router.gateway.stream``).

Frames are unnamed ``data:`` chunks (``object: chat.completion.chunk``) ended by ``data: [DONE]``. Before
the commit point, a chunk that only opens the answer (``delta: {"role": "assistant", "content": ""}``) is
held like a ``message_start``; the first chunk with content (text, a tool call, a refusal, reasoning), a
``finish_reason`` or the usage commits. A chunk whose data holds an ``error`` object (or an ``event:
error`` frame) is an upstream error: before content it falls back, after it it is relayed and ends the
stream. The usage chunk (``choices: []`` and a ``usage`` object) is read for accounting, and dropped when
the router, not the client, asked for it (``stream_options.include_usage``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import msgspec

from router.gateway.openai import usage
from router.gateway.openai.errors import sse_error_frame
from router.gateway.outcome import Failure, error_status_for_event, stream_error_failure
from router.gateway.sse import Frame
from router.gateway.stream import CONTENT, DROP, END, ERROR, HOLD, StreamFormat, StreamStats

DONE = b"[DONE]"
_TEXT_KEYS = ("content", "refusal", "reasoning_content", "reasoning")


def _delta_chars(delta: dict[str, Any]) -> int:
    """Characters of answer in one choice's delta; -1 when it carries none (a role-only opening)."""
    chars = -1
    for key in _TEXT_KEYS:
        piece = delta.get(key)
        if isinstance(piece, str) and piece:
            chars = max(chars, 0) + len(piece)
    calls = delta.get("tool_calls")
    if isinstance(calls, list) and calls:
        chars = max(chars, 0)
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for key in ("name", "arguments"):
                    piece = function.get(key)
                    if isinstance(piece, str):
                        chars += len(piece)
    return chars


def check(frame: Frame, stats: StreamStats, strip_usage: bool = False) -> tuple[str | None, int, Any]:
    """Read one chat-completions frame (``router.gateway.stream.Check``)."""
    data = frame.data
    if not data:
        return None, (ERROR if frame.event == "error" else HOLD), None
    if data == DONE:
        return None, END, None
    try:
        decoded = frame.json()
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return "malformed", HOLD, None
    if not isinstance(decoded, dict):
        return None, (ERROR if frame.event == "error" else HOLD), decoded
    if frame.event == "error" or decoded.get("error") is not None:
        return None, ERROR, decoded
    kind = HOLD
    choices = decoded.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                chars = _delta_chars(delta)
                if chars >= 0:
                    kind = CONTENT
                    stats.deltas += 1
                    stats.delta_chars += chars
            if choice.get("finish_reason") is not None:
                kind = CONTENT
    found = decoded.get("usage")
    if isinstance(found, dict):
        usage.merge_chunk(stats.usage, found)
        stats.final_usage = True
        if strip_usage and not choices:
            return None, DROP, decoded
        if kind == HOLD:
            kind = CONTENT
    return None, kind, decoded


def event_failure(model: str, decoded: Any, request_id: str | None) -> Failure:
    """An error chunk before content: a failure with the status its ``type`` (or numeric ``code``) names,
    relayed as a JSON error if no target answers."""
    error = decoded.get("error") if isinstance(decoded, dict) else None
    error_type = "api_error"
    status = 500
    if isinstance(error, dict):
        raw_type = str(error.get("type") or "api_error")[:40]
        # It reaches x-router-attempts: a header value, so only a token's characters.
        error_type = "".join(c for c in raw_type if c.isascii() and (c.isalnum() or c in "_-.")) or "api_error"
        status = error_status_for_event(error_type)
        code = error.get("code")
        if isinstance(code, (int, str)) and str(code).isdigit() and 400 <= int(code) <= 599:
            status = int(code)
    if not isinstance(error, dict):
        body = msgspec.json.encode({"error": {"message": "upstream stream error", "type": error_type, "param": None, "code": None}})
    else:
        body = msgspec.json.encode({"error": error})
    return stream_error_failure(model, error_type, status, body, request_id)


CHAT_STREAM = StreamFormat(check, sse_error_frame, event_failure)
"""A chat-completions stream whose usage chunk the client asked for: relayed."""
CHAT_STREAM_STRIP_USAGE = StreamFormat(partial(check, strip_usage=True), sse_error_frame, event_failure)
"""One whose usage chunk only the router asked for: read, then dropped."""
