"""The drain deadline as clients see it: a request still waiting for its answer when the grace period
runs out gets an Anthropic envelope (503 ``api_error``, ``x-should-retry: true``: another replica can
take it) and an access line, instead of uvicorn's plain-text 500 and silence.

Owns ``DrainDeadline``, the outermost ASGI layer of the client listener. At the deadline uvicorn cancels
the request tasks still running; the cancellation surfaces here. If the response has not started, the
envelope is written and the task ends normally; if it has (a stream past its commit point), the
cancellation goes on as before (the stream relay's own cleanup ends it). Nothing runs per request on
the normal path but a try block.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from router.errors import error_body
from router.gateway.replies import new_request_id

log = logging.getLogger("router.access")

DRAIN_MESSAGE = "the router shut down before the answer arrived (drain deadline); retry the request"


class DrainDeadline:
    """Wraps an ASGI app; ``state`` is the wrapped app's (the server reads ``state.services`` from it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if scope["type"] != "http" or not await _answer(send):
                raise
            log.info("%s", msgspec.json.encode({"path": scope["path"][:64], "status": 503, "outcome": "shutdown"}).decode())


async def _answer(send: Any) -> bool:
    """Write the envelope if the response has not started; False if it had (uvicorn refuses a second start)."""
    request_id = new_request_id()
    body = error_body(503, DRAIN_MESSAGE, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", request_id.encode()),
        (b"x-should-retry", b"true"),
        (b"connection", b"close"),
    ]
    try:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
    except RuntimeError:
        return False
    await send({"type": "http.response.body", "body": body})
    return True
