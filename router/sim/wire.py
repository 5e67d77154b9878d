"""Wire-format details shared by the sim's handlers: headers, error envelopes and SSE frames.

Owns the exact bytes Anthropic's API uses for these (status -> error type, ``request-id``, rate-limit
headers, ``event:``/``data:`` framing). It does not decide *which* response to send.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

# The status -> error type table Anthropic documents; the status picks the client SDK's exception class.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

ERROR_MESSAGES: dict[str, str] = {
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit (simulated)",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
}

# Generous fixed limits: the sim reports plausible headers, it does not enforce them.
_LIMITS = {"requests": 4000, "tokens": 2_000_000, "input-tokens": 1_600_000, "output-tokens": 400_000}


def new_request_id() -> str:
    return f"req_sim_{secrets.token_hex(12)}"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def common_headers(request_id: str, served: int, *, limited: bool = False) -> dict[str, str]:
    """``request-id`` plus the ``anthropic-ratelimit-*`` family; ``limited`` reports zero requests left."""
    reset = _rfc3339(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=60))
    headers = {"request-id": request_id}
    for name, limit in _LIMITS.items():
        remaining = limit - (served % limit) if name == "requests" else limit
        headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{name}-remaining"] = "0" if limited and name == "requests" else str(remaining)
        headers[f"anthropic-ratelimit-{name}-reset"] = reset
    return headers


def error_body(status: int, message: str | None, request_id: str, error_type: str | None = None) -> dict[str, Any]:
    kind = error_type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    text = message if message is not None else ERROR_MESSAGES.get(kind, kind)
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": request_id}


def json_response(body: Any, *, status: int = 200, headers: dict[str, str]) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers={**headers, "content-type": "application/json"},
    )


def error_response(
    status: int,
    headers: dict[str, str],
    message: str | None = None,
    *,
    error_type: str | None = None,
) -> web.Response:
    body = error_body(status, message, headers["request-id"], error_type)
    return json_response(body, status=status, headers=headers)


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def comment_frame(text: str) -> bytes:
    """An SSE comment frame (a line starting with ``:``): proxies and servers send them as keep-alives."""
    return f": {text}\n\n".encode()


def stream_error_frame() -> bytes:
    """The mid-stream ``error`` event the API sends after a 200 when it becomes overloaded."""
    return sse_frame("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def malformed_frame() -> bytes:
    """A ``content_block_delta`` frame whose data is truncated JSON, as a broken proxy might relay it."""
    return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"te\n\n'


def retry_after_value(seconds: float | None) -> str:
    """``retry-after`` as the API sends it: whole seconds when whole, default 1."""
    value = 1.0 if seconds is None else seconds
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
