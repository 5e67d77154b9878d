"""The ASGI front door: ``POST /v1/messages``, ``count_tokens`` and ``/v1/chat/completions`` (the OpenAI
dialect) go straight to the proxy pipeline; every other request goes to the Litestar app.

Why a front door: the two proxy routes carry all the traffic, and on them the router's own work is a few
hundred microseconds, so a framework's per-request layers (routing, request and header objects, exception
middleware, response encoding) were a large share of it (BENCHMARKS.md, profile). Here a proxy request
costs one dict lookup to route, one pass over the raw headers, and two ``send`` calls to answer. The
behaviour the framework gave is kept explicitly: the body size limit (413), errors in Anthropic's envelope
with the status the SDKs expect, a 500 envelope for bugs (logged by type, never by message), and
watching for the client going away.

The disconnect watcher starts once the body has been read (the first moment ``receive`` can report
``http.disconnect`` about anything but the body) and lasts until the answer is written: a client that
leaves while its request is being classified or dispatched cancels ``forward`` -- the attempt in flight is
abandoned, its upstream connection closed, no further tier is tried and no Haiku call starts -- and is
logged ``client_closed``; during a stream the same watcher cancels the relay. It costs one task per
request, which a proxy that can spend minutes on an answer for nobody cannot do without.

The drain deadline: uvicorn cancels the handlers still running when ``timeout_graceful_shutdown``
(``drain_seconds``) passes. A request still waiting for its answer then gets a 503 envelope with
``x-should-retry: true`` (not uvicorn's plain-text 500), a stream an ``event: error`` frame (never a clean
end), and both an access line with outcome ``shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from litestar import Litestar

from router.observability.logs import log_unexpected
from router.errors import (
    ClientFacingError,
    ClientGone,
    InternalError,
    MethodNotAllowed,
    RequestTooLarge,
    ShuttingDown,
    sse_error_frame,
)
from router.gateway.dialect import MESSAGES, OPENAI_CHAT, Dialect
from router.gateway.passthrough import PassRequest, Relayed, is_passthrough, pass_through, refused_at_the_door
from router.gateway.pipeline import SHUTDOWN, Inbound, forward
from router.gateway.replies import Reply, StreamReply

log = logging.getLogger("router")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# path -> (upstream path, is it a Messages call: classified, limited, may stream; its API dialect)
PROXY_ROUTES: dict[str, tuple[str, bool, Dialect]] = {
    "/v1/messages": ("/v1/messages", True, MESSAGES),
    "/v1/messages/count_tokens": ("/v1/messages/count_tokens", False, MESSAGES),
    "/v1/chat/completions": ("/v1/chat/completions", True, OPENAI_CHAT),
}
TOO_LARGE = "request body too large: the limit is 32 MB"


class RouterApp:
    """The ASGI application the server runs. ``state`` is the Litestar app's (``state.services``)."""

    def __init__(self, litestar: Litestar, max_body_bytes: int) -> None:
        self.litestar = litestar
        self.max_body_bytes = max_body_bytes

    @property
    def state(self) -> Any:
        return self.litestar.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = PROXY_ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            if scope["type"] == "http" and is_passthrough(scope["path"]):
                await self._pass(scope, receive, send)  # the rest of the Anthropic API (issue 15)
                return
            await self.litestar(scope, receive, send)  # type: ignore[arg-type]
        elif scope["method"] == "POST":
            await self._proxy(scope, receive, send, *route)
        else:
            reply = route[2].error_reply(MethodNotAllowed("method not allowed on this path"), {"allow": "POST"})
            await send_reply(reply, send)

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, path: str, messages: bool, dialect: Dialect
    ) -> None:
        watcher: asyncio.Future[None] | None = None
        try:
            headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
            body = await read_body(receive, headers, self.max_body_bytes)
            inbound = Inbound(headers, body, scope.get("query_string", b""))
            watcher = asyncio.ensure_future(_disconnected(receive))
            reply: Reply | StreamReply = await _unless_gone(
                forward(inbound, self.litestar.state.services, path, messages=messages, dialect=dialect), watcher
            )
        except ClientGone:
            if watcher is not None:
                watcher.cancel()
            return
        except ClientFacingError as exc:
            reply = dialect.error_reply(exc, None)
        except Exception as exc:  # a bug: answer in the envelope, log the type only (messages may quote content)
            log_unexpected(log, "handling a request", exc)
            reply = dialect.error_reply(InternalError("internal error in the router"), None)
        except BaseException:
            if watcher is not None:
                watcher.cancel()
            raise
        if isinstance(reply, StreamReply):
            await send_stream(reply, receive, send, watcher)
            return
        if watcher is not None:
            watcher.cancel()
        await send_reply(reply, send)


    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward a ``/v1/*`` path the router does not serve (``router.gateway.passthrough``), its body streamed
        back; the same body limit, error envelope and disconnect watching as the proxy routes."""
        watcher: asyncio.Future[None] | None = None
        services = self.litestar.state.services
        try:
            headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
            body = await read_body(receive, headers, self.max_body_bytes)
            request = PassRequest(scope["method"], scope["path"], _target(scope), headers, body, _base_url(scope, headers))
            watcher = asyncio.ensure_future(_disconnected(receive))
            reply: Reply | Relayed = await _unless_gone(pass_through(request, services), watcher)
        except ClientGone:
            if watcher is not None:
                watcher.cancel()
            return
        except ClientFacingError as exc:
            if watcher is None:  # refused before ``pass_through`` saw it (the body limit): counted here
                refused_at_the_door(services, scope["method"], scope["path"], exc.status)
            reply = MESSAGES.error_reply(exc, None)
        except Exception as exc:  # a bug: answer in the envelope, log the type only
            log_unexpected(log, "forwarding a request", exc)
            reply = MESSAGES.error_reply(InternalError("internal error in the router"), None)
        except BaseException:
            if watcher is not None:
                watcher.cancel()
            raise
        if isinstance(reply, Relayed):
            await send_relayed(reply, send, watcher)
            return
        if watcher is not None:
            watcher.cancel()
        await send_reply(reply, send)


def _target(scope: Scope) -> str:
    """The path and query as the client encoded them (forwarded as they are)."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def _base_url(scope: Scope, headers: list[tuple[str, str]]) -> str:
    """How the client reached the router (scheme and ``Host``), or "" when that is unknown or odd."""
    host = next((value for name, value in headers if name.lower() == "host"), "")
    if not host or len(host) > 255 or not all(c.isalnum() or c in ".-:[]_" for c in host):
        return ""
    return f"{scope.get('scheme', 'http')}://{host}"


_T = TypeVar("_T")


async def _unless_gone(work: Awaitable[_T], watcher: asyncio.Future[None]) -> _T:
    """``work``'s result, or ``ClientGone`` once ``watcher`` saw the client disconnect first (``work`` is
    then cancelled and awaited, so its own cleanup -- closing the upstream attempt, the access line --
    has run when this returns)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # this handler cancelled: the drain deadline passed
        task.cancel(SHUTDOWN)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        _uncancel()
        raise ShuttingDown() from None
    except BaseException:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientGone


async def read_body(receive: Receive, headers: list[tuple[str, str]], limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes (declared or actual) with a 413."""
    for name, value in headers:
        if name.lower() == "content-length":
            with contextlib.suppress(ValueError):
                if int(value) > limit:
                    raise RequestTooLarge(TOO_LARGE)
            break
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise RequestTooLarge(TOO_LARGE)
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(TOO_LARGE)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def send_reply(reply: Reply, send: Send) -> None:
    """Write a complete reply, then run its accounting (``reply.after``) -- whether or not the write worked."""
    raw = _raw_headers(reply.headers)
    raw.append((b"content-length", str(len(reply.body)).encode()))
    try:
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": reply.body})
    finally:
        if reply.after is not None:
            try:
                reply.after()
            except Exception as exc:  # a bug in the accounting: the answer is out; log the type only
                log_unexpected(log, "accounting a request", exc)


async def send_stream(
    reply: StreamReply, receive: Receive, send: Send, watcher: asyncio.Future[None] | None = None
) -> None:
    """Write the stream while watching the connection: a client that leaves cancels the relay, whose
    cleanup closes the upstream response (so generation stops) and records the request's end.
    ``watcher``: the request's disconnect watcher, already running (the only reader of ``receive``).

    The headers and the first chunk (the frames held back to the commit point, which the relay has in hand)
    are written before any task is started: the first token does not wait for a task switch."""
    chunks = reply.chunks
    writer: asyncio.Future[None] | None = None
    shutdown = False
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _raw_headers(reply.headers)})
        first = await anext(aiter(chunks), None)
        if first is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.body", "body": first, "more_body": True})
        writer = asyncio.ensure_future(_pump(chunks, send))
        if watcher is None:
            watcher = asyncio.ensure_future(_disconnected(receive))
        await asyncio.wait((writer, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # this handler cancelled: the drain deadline passed mid-stream
        shutdown = True
        _uncancel()
        mark_end = getattr(chunks, "mark_end", None)
        if mark_end is not None:
            mark_end("shutdown")  # before the writer is cancelled, which closes the relay
    except Exception as exc:  # a bug in the relay: the connection is closed by the server; type only
        log_unexpected(log, "streaming a reply", exc)
    finally:
        if writer is not None and not writer.done():
            writer.cancel()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if writer is not None:
            try:
                await writer
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a bug in the relay, as above
                log_unexpected(log, "streaming a reply", exc)
        if shutdown:
            await _end_for_shutdown(send, reply.error_frame(503, SHUTDOWN_MESSAGE))
        # A writer cancelled while it was in ``send`` (or before it asked for the first chunk) leaves the
        # relay unfinished; closing it here runs its cleanup now (upstream closed, request recorded) rather
        # than at garbage collection, or never.
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def send_relayed(reply: Relayed, send: Send, watcher: asyncio.Future[None] | None) -> None:
    """Write a forwarded answer as its body arrives, while watching the connection (a client that leaves
    stops the relay, which closes the upstream response). A body that did not reach its end is not ended:
    the server closes the connection short, so the client sees an incomplete body rather than a clean end.
    Then the request's accounting (``reply.finish``: the access line; a batch's results booked)."""
    pump: asyncio.Future[None] | None = None
    try:
        await send({"type": "http.response.start", "status": reply.status, "headers": _raw_headers(reply.headers)})
        pump = asyncio.ensure_future(_pump_relayed(reply, send))
        await asyncio.wait((pump,) if watcher is None else (pump, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the drain deadline passed mid-body
        _uncancel()
        reply.mark_end("shutdown")
    except Exception as exc:  # a bug in the relay: the connection is closed by the server; type only
        log_unexpected(log, "relaying a forwarded answer", exc)
    finally:
        if pump is not None and not pump.done():
            pump.cancel()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if pump is not None:
            try:
                await pump
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # as above
                log_unexpected(log, "relaying a forwarded answer", exc)
        aclose = getattr(reply.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        try:
            await reply.finish()
        except Exception as exc:  # a bug in the accounting: the answer is out; log the type only
            log_unexpected(log, "accounting a forwarded request", exc)


async def _pump_relayed(reply: Relayed, send: Send) -> None:
    async for chunk in reply.chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if reply.complete:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


SHUTDOWN_MESSAGE = "the router is shutting down; the answer is incomplete"
SHUTDOWN_FRAME = sse_error_frame(503, SHUTDOWN_MESSAGE)


async def _end_for_shutdown(send: Send, frame: bytes = SHUTDOWN_FRAME) -> None:
    """End a stream cut by the drain deadline (its relay already marked ``shutdown``, so the access line
    says so) with an ``event: error`` frame -- never a silent end that looks like success."""
    with contextlib.suppress(Exception):
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _uncancel() -> None:
    """Take back the cancellation just delivered, so this handler can still write its last words."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _pump(chunks: AsyncIterator[bytes], send: Send) -> None:
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
