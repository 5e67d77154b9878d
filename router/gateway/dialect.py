"""Dialects: the API formats the pipeline serves, each as the few functions that differ between them.

The pipeline (admission, classification, planning, dispatch with fallback, the commit point, accounting,
the access line) is one; what depends on the wire format is here: how a body is parsed into the view
(and a Messages-shaped reading for the classifier), how an answer's usage is read, how a stream's frames
are read and a failed stream is ended, and the error envelope. ``MESSAGES`` is Anthropic's Messages API
(``/v1/messages``, ``count_tokens``); ``OPENAI_CHAT`` the OpenAI-compatible ``/v1/chat/completions``,
forwarded to the upstream's own endpoint of that name (never translated).

A dialect is a frozen record of module-level functions: choosing one costs the front door nothing per
request but the route lookup it already does.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from router.errors import ClientFacingError, sse_error_frame
from router.gateway import usage
from router.gateway.openai import errors as openai_errors
from router.gateway.openai import request as openai_request
from router.gateway.openai import usage as openai_usage
from router.gateway.openai.stream import CHAT_STREAM, CHAT_STREAM_STRIP_USAGE
from router.gateway.replies import Reply, error_reply, json_reply, new_request_id
from router.gateway.stream import MESSAGES_STREAM, StreamFormat
from router.gateway.view import ParsedRequest, parse_request


class Dialect(msgspec.Struct, frozen=True):
    name: str
    parse: Callable[[bytes], ParsedRequest]
    """Body bytes -> the parsed request; raises InvalidRequest."""
    read_usage: Callable[[bytes], "dict[str, int] | None"]
    """A JSON answer's usage (None: not a JSON object)."""
    stream_format: Callable[[ParsedRequest], StreamFormat]
    """The stream format for this request (it may depend on what the client asked for)."""
    error_reply: Callable[[ClientFacingError, "dict[str, str] | None"], Reply]
    """A router error as this API's envelope."""
    error_frame: Callable[[int, str], bytes]
    """The frame that ends a committed stream that failed."""
    bearer_upstream: bool = False
    """Also send the router's upstream key as ``Authorization: Bearer`` (besides ``x-api-key``): how the
    OpenAI SDK authenticates to Anthropic's OpenAI-compatible endpoint, which Anthropic documents."""


def _messages_stream(parsed: ParsedRequest) -> StreamFormat:
    return MESSAGES_STREAM


MESSAGES = Dialect("messages", parse_request, usage.read_json, _messages_stream, error_reply, sse_error_frame)


def _chat_stream(parsed: ParsedRequest) -> StreamFormat:
    return CHAT_STREAM_STRIP_USAGE if openai_request.strip_usage(parsed) else CHAT_STREAM


def _chat_error_reply(exc: ClientFacingError, extra: dict[str, str] | None = None) -> Reply:
    headers = {"request-id": new_request_id(), **exc.headers, **(extra or {})}
    return json_reply(exc.status, headers, openai_errors.exception_body(exc))


OPENAI_CHAT = Dialect(
    "chat_completions",
    openai_request.parse_chat,
    openai_usage.read_json,
    _chat_stream,
    _chat_error_reply,
    openai_errors.sse_error_frame,
    bearer_upstream=True,
)
