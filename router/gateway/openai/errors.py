"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``, with the same statuses
(and so the same SDK exceptions) as the router's Anthropic envelope.

The ``type`` is the Anthropic error type of the status (``router.errors.error_type_for``): Anthropic's
OpenAI-compatible endpoint keeps its own vocabulary, and OpenAI's SDK reads only the status and message.
``param`` names the request field when the router's message starts with it (``messages: Field required``);
``code`` is OpenAI's machine-readable reason for the few errors it has one for.
"""

from __future__ import annotations

import msgspec

from router.errors import AuthenticationFailed, BudgetExceeded, ClientFacingError, RateLimited, error_type_for

_CODES: dict[type[ClientFacingError], str] = {
    AuthenticationFailed: "invalid_api_key",
    RateLimited: "rate_limit_exceeded",
    BudgetExceeded: "insufficient_quota",
}


def _param(message: str) -> str | None:
    """The field a message starts with (``model: ...``), when it is a plain field name."""
    head, sep, _ = message.partition(":")
    if sep and head and len(head) <= 64 and head.replace("_", "").isalpha() and head.islower():
        return head
    return None


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> bytes:
    """The OpenAI error envelope, encoded."""
    error = {"message": message, "type": error_type_for(status), "param": param, "code": code}
    return msgspec.json.encode({"error": error})


def exception_body(exc: ClientFacingError) -> bytes:
    """A client-facing router error as an OpenAI envelope."""
    param = _param(exc.message) if exc.status == 400 else None
    return error_body(exc.status, exc.message, param=param, code=_CODES.get(type(exc)))


def sse_error_frame(status: int, message: str) -> bytes:
    """The frame that ends a committed chat-completions stream that failed: a ``data:`` chunk holding an
    ``error`` object, which the OpenAI SDK raises as ``APIError`` (no ``[DONE]`` follows)."""
    return b"data: " + error_body(status, message) + b"\n\n"
