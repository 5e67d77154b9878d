"""Receiving an API request: read and parse the body, log it, and reject what the real API would reject.

Owns the 400/404 checks every API endpoint shares (malformed JSON, missing or mistyped fields, the
``does-not-exist`` model). It must not inject faults or produce successful content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from router.sim.state import SimState
from router.sim.wire import common_headers, error_response, new_request_id

# Field -> (accepted Python types, human name) for the messages API's required fields.
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a string"),
    "messages": ((list,), "an array"),
    "max_tokens": ((int,), "an integer"),
}


@dataclass
class Received:
    """A logged request with its parsed body (``None`` when absent or not JSON) and response headers."""

    raw: bytes
    body: Any
    parse_error: str | None
    entry: dict[str, Any]
    headers: dict[str, str]


async def receive(request: web.Request, state: SimState, endpoint: str) -> Received:
    raw = await request.read()
    body: Any = None
    parse_error: str | None = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            parse_error = f"The request body is not valid JSON: {exc}"
    else:
        parse_error = "The request body is empty; expected a JSON object"
    entry = state.record(request, body, endpoint)
    headers = common_headers(new_request_id(), state.served)
    return Received(raw, body, parse_error, entry, headers)


def reject(received: Received, state: SimState, required: tuple[str, ...]) -> web.Response | None:
    """The error the API would return for this body, or ``None`` when it is acceptable.

    On success the body is a dict holding every ``required`` field with the right type, and the
    request's model has been noted in the log.
    """
    headers = received.headers
    if received.parse_error is not None:
        return error_response(400, headers, received.parse_error)
    body = received.body
    if not isinstance(body, dict):
        return error_response(400, headers, "The request body must be a JSON object")
    for field in required:
        if field not in body:
            return error_response(400, headers, f"{field}: Field required")
        types, name = _FIELD_TYPES[field]
        value = body[field]
        # bool is an int subclass in Python, but the API rejects max_tokens: true.
        if not isinstance(value, types) or isinstance(value, bool):
            return error_response(400, headers, f"{field}: Input should be {name}")
    if "max_tokens" in required and body["max_tokens"] < 1:
        return error_response(400, headers, "max_tokens: Input should be greater than or equal to 1")
    model = body["model"]
    state.note_model(received.entry, model)
    if "does-not-exist" in model:
        return error_response(404, headers, f"model: {model}")
    return None
