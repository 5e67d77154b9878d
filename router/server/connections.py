"""Inbound connection guards: how long a client may take to send a request, and how many connections a
listener holds open (slowloris defence).

Owns the uvicorn HTTP protocol the router runs (uvicorn's httptools protocol plus three limits) and the
raw replies it writes when a limit trips. uvicorn alone has none of these for new connections: its
keep-alive timer is armed only after a response, so a connection that sends nothing, or drips its headers
or body, stays open for ever; and its ``limit_concurrency`` answers plain text after reading headers. Here:

* ``header_timeout``: from the connection opening (or the next request's first byte) to the end of the
  headers. Past it: a 408 envelope and the connection is closed.
* ``body_timeout``: from the end of the headers to the end of the body. Past it: the same (the handler
  sees the client as gone).
* ``max_connections``: open connections on this listener; one more gets a 529 ``overloaded_error``
  envelope (the SDKs retry it) and is closed at once, before any byte is read, so the cap costs nothing.

Idle keep-alive connections are uvicorn's ``timeout_keep_alive`` (``Settings.keep_alive_timeout``).
Nothing here touches requests that are within their limits: two timer operations per request.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router.errors import error_body
from router.gateway.replies import new_request_id
from router.settings import Settings

_PHRASES = {408: b"Request Timeout", 529: b"Overloaded"}


class ConnectionLimits(msgspec.Struct, frozen=True):
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.header_timeout, settings.body_timeout, settings.max_connections)


def raw_reply(status: int, message: str, extra: bytes = b"") -> bytes:
    """A complete HTTP/1.1 error response in Anthropic's envelope, for writing straight to a transport."""
    request_id = new_request_id()
    body = error_body(status, message, request_id)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nrequest-id: %s\r\n"
        b"connection: close\r\n%s\r\n" % (status, _PHRASES[status], len(body), request_id.encode(), extra)
    ) + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a body deadline and a connection cap."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.server_state.connections) >= self._limits.max_connections:
            self._refused = True
            message = "the router is at its connection limit; retry shortly"
            transport.write(raw_reply(529, message, b"retry-after: 1\r\nx-should-retry: true\r\n"))
            transport.close()
            return
        super().connection_made(transport)
        self._arm(self._limits.header_timeout, "request headers")  # also catches a connection that sends nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a keep-alive connection's next request
            self._arm(self._limits.header_timeout, "request headers")

    def on_headers_complete(self) -> None:
        self._disarm()
        self._arm(self._limits.body_timeout, "the request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, what: str) -> None:
        self._deadline = self.loop.call_later(seconds, self._expired, seconds, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle  # in a keep-alive connection's header phase: the previous request's, complete
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(raw_reply(408, f"timed out after {seconds:g} s waiting for {what}"))
        self.transport.close()


def protocol_factory(limits: ConnectionLimits) -> Any:
    """What ``uvicorn.Config(http=...)`` takes: called per connection with uvicorn's arguments."""
    return partial(GuardedHttpToolsProtocol, limits=limits)
