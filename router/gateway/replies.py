"""Turning a dispatch result into the response the client gets, with the ``x-router-*`` headers.

Owns the response side of the contract: which upstream bytes and headers are relayed, which error is shown
when every target failed, and the headers that explain the decision. It does no I/O itself: a ``Reply``
or ``StreamReply`` is plain data that ``router.server.asgi`` writes to the connection.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator, Callable

from router.gateway.dispatch import Dispatched
from router.errors import ClientFacingError, UpstreamUnavailable, error_body, error_type_for, sse_error_frame
from router.gateway.headers import format_attempts
from router.gateway.outcome import CAPACITY_STATUSES, exhausted_headers, most_informative
from router.gateway.plan import Plan


def new_request_id() -> str:
    """An id for responses the router writes itself (the upstream's own ``request-id`` wins otherwise)."""
    return "req_router_" + secrets.token_hex(12)


def router_headers(plan: Plan, result: Dispatched[object]) -> dict[str, str]:
    target = result.target
    tier = target.tier if target is not None else plan.tier
    headers = {
        "x-router-rule": plan.rule,
        "x-router-attempts": format_attempts(result.attempts),
    }
    if target is not None:
        headers["x-router-model"] = target.model
    if tier:
        headers["x-router-tier"] = tier
    return headers


class Reply:
    """A complete response: status, headers (lower-case names) and body. ``after``, when set, is the
    request's accounting (usage, budget, metrics, log line), run once the body has been written (or the
    write failed), so the client does not wait for it."""

    __slots__ = ("after", "body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, after: Callable[[], None] | None = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.after = after


class StreamReply:
    """A 200 server-sent-event stream: headers now, then the chunks as the relay produces them.
    ``error_frame``: how this stream's format writes a failure (the server's drain deadline uses it)."""

    __slots__ = ("chunks", "error_frame", "headers")

    def __init__(
        self,
        headers: dict[str, str],
        chunks: AsyncIterator[bytes],
        error_frame: Callable[[int, str], bytes] = sse_error_frame,
    ) -> None:
        self.headers = headers
        self.chunks = chunks
        self.error_frame = error_frame


def json_reply(status: int, headers: dict[str, str], body: bytes) -> Reply:
    headers.setdefault("content-type", "application/json")
    return Reply(status, headers, body)


def stream_reply(
    headers: dict[str, str], chunks: AsyncIterator[bytes], error_frame: Callable[[int, str], bytes] = sse_error_frame
) -> StreamReply:
    headers.setdefault("content-type", "text/event-stream; charset=utf-8")
    headers.setdefault("cache-control", "no-cache")
    return StreamReply(headers, chunks, error_frame)


def envelope(exc: ClientFacingError, extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A client-facing error as status, headers and Anthropic's envelope, with a fresh ``request-id``: the
    one place an error answer is built (the front door's replies and Litestar's handlers both use it)."""
    request_id = new_request_id()
    headers = {"request-id": request_id, **exc.headers, **(extra or {})}
    return exc.status, headers, error_body(exc.status, exc.message, request_id)


def error_reply(exc: ClientFacingError, extra: dict[str, str] | None = None) -> Reply:
    return json_reply(*envelope(exc, extra))


ErrorReply = Callable[[ClientFacingError, "dict[str, str] | None"], Reply]


def failure_reply(
    plan: Plan,
    result: Dispatched[object],
    now: float,
    cooling_until: dict[str, float],
    error_reply: ErrorReply = error_reply,
) -> Reply:
    """The response when no target succeeded: a relayed non-retryable error, or the best of the failures.
    ``error_reply`` writes the errors the router describes itself (the dialect's envelope)."""
    headers = router_headers(plan, result)
    if result.final is not None:
        final = result.final
        capacity = [f for f in result.failures if f.status in CAPACITY_STATUSES and f.body is not None]
        if capacity:
            # A fallback target refused what an earlier one could not serve for capacity (Opus 429, then
            # Sonnet 400: often a limit or feature of the fallback model, for a body the client never sent
            # it). The capacity failure is the answer to the client's own request: it is returned with its
            # retry-after, so the SDK retries when the first choice is back; the refusal is named in
            # ``x-router-fallback-error`` rather than hidden.
            best = most_informative(capacity)
            note = f"{final.model} {final.status} {error_type_for(final.status)}"
            extra = {**headers, **exhausted_headers(capacity), "x-router-fallback-error": note}
            return json_reply(best.status, {**(best.headers or {}), **extra}, best.body or b"")
        return json_reply(final.status, {**(final.headers or {}), **headers}, final.body or b"")
    if result.failures:
        best = most_informative(result.failures)
        advice = exhausted_headers(result.failures)
        if best.body is not None:
            return json_reply(best.status, {**(best.headers or {}), **headers, **advice}, best.body)
        summary = ", ".join(f"{m}: {o}" for m, o in result.attempts)
        exc = UpstreamUnavailable(f"every target failed ({summary}); last: {best.message}", status=best.status)
        return error_reply(exc, {**headers, **advice})
    if plan.cooling:
        # Every candidate is cooling down after a 429/529: say when the first one is usable again.
        soonest = min(cooling_until.get(t.model, now) for t in plan.cooling)
        wait = max(1, math.ceil(soonest - now))
        names = ", ".join(t.model for t in plan.cooling)
        exc = UpstreamUnavailable(
            f"every target is cooling down after rate limiting or overload ({names}); retry in {wait}s",
            status=429,
            headers={"retry-after": str(wait), "x-should-retry": "true"},
        )
        return error_reply(exc, headers)
    exc = UpstreamUnavailable("the request deadline passed before any target answered", status=504)
    return error_reply(exc, {**headers, "x-should-retry": "false"})
