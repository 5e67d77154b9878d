"""Streaming with a commit point.

Before the commit point nothing has reached the client, so any failure (an HTTP error, an ``error`` event,
a cut connection, a malformed frame, no content before the first-content deadline) falls back to the next
target invisibly. ``message_start``, ``ping`` and ``content_block_start`` are held back; the first other
event (normally a ``content_block_delta``) commits the stream.
After the commit point the upstream's bytes are relayed frame by frame, unchanged, and any failure ends
the stream with an Anthropic ``event: error`` frame -- never with a clean end that looks like success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import msgspec

from router.gateway import usage
from router.gateway.dispatch import transport_failure
from router.errors import TransportError, sse_error_frame
from router.upstream.transport import Response
from router.gateway.headers import downstream_headers
from router.gateway.outcome import RETRYABLE_STATUSES, Failure, error_status_for_event, http_failure
from router.gateway.plan import Target
from router.gateway.sse import Frame, SSEFramer
from router.gateway.outbound import Outbound

# Held back until the first event that carries content: a block's start alone is not yet an answer, and
# holding it costs nothing (its first delta follows at once) while it keeps fallback possible.
HELD_EVENTS = frozenset({"message_start", "ping", "content_block_start"})


class StreamStats:
    """What the relay learned while passing bytes through: usage, timing and how the stream ended."""

    __slots__ = ("end", "first_content_at", "usage")

    def __init__(self) -> None:
        self.first_content_at: float | None = None
        self.usage = usage.empty()
        """Input, output and prompt-cache tokens as the events reported them (``router.gateway.usage``)."""
        self.end = "open"
        """``complete``, ``upstream_error``, ``cut``, ``stall``, ``malformed``, ``client_gone`` or ``open``."""


class OpenStream:
    """A committed stream: the response to relay, the bytes held back so far and the framer's state."""

    def __init__(
        self,
        response: Response,
        idle_timeout: float,
        headers: dict[str, str],
        held: list[bytes],
        framer: SSEFramer,
        stats: StreamStats,
        finished: bool,
    ) -> None:
        self.response = response
        self.idle_timeout = idle_timeout
        self.headers = headers
        self.held = held
        self.framer = framer
        self.stats = stats
        self.finished = finished
        """The held frames already end the stream (message_stop or an error event after content)."""

    async def close(self) -> None:
        # An unfinished response closes its connection: if the client went away mid-answer, the upstream
        # should stop generating.
        self.response.close()


def _check(frame: Frame, stats: StreamStats) -> tuple[str | None, object]:
    """Decode a frame's data. Returns (problem, decoded): problem is ``malformed`` or None."""
    if not frame.data:
        return None, None
    try:
        decoded = frame.json()
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return "malformed", None
    usage.merge_event(stats.usage, frame.event, decoded)
    return None, decoded


def _event_failure(model: str, decoded: object, request_id: str | None) -> Failure:
    error = decoded.get("error") if isinstance(decoded, dict) else None
    error_type = error.get("type", "api_error") if isinstance(error, dict) else "api_error"
    status = error_status_for_event(str(error_type))
    body = msgspec.json.encode(decoded) if isinstance(decoded, dict) else None
    return Failure(
        model=model,
        label=f"error_event:{error_type}",
        status=status,
        retryable=status in RETRYABLE_STATUSES,
        message=f"upstream stream error before content ({error_type})",
        body=body,
        # Only the id: the stream's other headers (content-type above all) do not fit a JSON error reply.
        headers={"request-id": request_id} if request_id else None,
    )


async def open_stream(
    out: Outbound, target: Target, deadline: float, clock: Callable[[], float] = time.monotonic
) -> OpenStream | Failure:
    """One streaming attempt, read up to the commit point."""
    settings = out.settings
    stats = StreamStats()
    budget = max(min(settings.first_content_timeout, deadline - clock()), 0.001)
    body = out.body(target.model)
    response: Response | None = None
    try:
        async with asyncio.timeout(budget):
            response = await out.upstream.transport.request("POST", out.path_qs, out.headers, body)
            if response.status != 200:
                data = await response.read()
                return http_failure(target.model, response.status, data, downstream_headers(response.headers))
            return await _read_to_commit(response, settings.stream_idle_timeout, target, stats, clock)
    except TimeoutError:
        _abort(response)
        return transport_failure(target.model, "stall", "no content from upstream before the first-content deadline")
    except TransportError as exc:
        _abort(response)
        message = "upstream stream cut before content" if exc.label == "cut" else exc.message
        return transport_failure(target.model, exc.label, message)
    except BaseException:  # cancelled (the client left) or a bug: never leave the upstream stream open
        _abort(response)
        raise


def _abort(response: Response | None) -> None:
    if response is not None:
        response.close()


async def _read_to_commit(
    response: Response, idle_timeout: float, target: Target, stats: StreamStats, clock: Callable[[], float]
) -> OpenStream | Failure:
    framer = SSEFramer()
    held: list[bytes] = []
    while True:
        chunk = await response.chunk(idle_timeout)
        if not chunk:
            response.close()
            return transport_failure(target.model, "cut", "upstream stream ended before content")
        committed = False
        for frame in framer.feed(chunk):
            problem, decoded = _check(frame, stats)
            if not committed:
                if problem:
                    response.close()
                    return transport_failure(target.model, "malformed", "upstream sent a malformed event")
                if frame.event == "error":
                    response.close()
                    return _event_failure(target.model, decoded, response.get("request-id"))
                if frame.event not in HELD_EVENTS:
                    committed = True
                    stats.first_content_at = clock()
                held.append(frame.raw)
                continue
            # Later frames of the committing chunk: relay them as the relay loop would.
            if problem:
                held.append(sse_error_frame(502, "upstream sent a malformed event"))
                stats.end = "malformed"
                break
            held.append(frame.raw)
            if frame.event in ("message_stop", "error"):
                stats.end = "complete" if frame.event == "message_stop" else "upstream_error"
        if committed:
            headers = downstream_headers(response.headers)
            return OpenStream(response, idle_timeout, headers, held, framer, stats, finished=stats.end != "open")


class Relay:
    """The bytes the client receives after the commit point, as an async iterator. Always ends the stream
    deliberately, and ``on_end`` is called exactly once with what the relay saw, however the stream ended:
    to the end, upstream failure, client gone mid-stream, or closed before the first chunk was asked for
    (``aclose`` on a generator that never started would run none of its cleanup)."""

    def __init__(self, stream: OpenStream, on_end: Callable[[StreamStats], None] | None = None) -> None:
        self._stream = stream
        self._on_end = on_end
        self._chunks = self._relay()
        self._started = False
        self._finished = False

    def __aiter__(self) -> Relay:
        return self

    async def __anext__(self) -> bytes:
        self._started = True
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        if self._started:
            await self._chunks.aclose()
        else:
            await self._finish()

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        stats = self._stream.stats
        # Still open here means the relay was cancelled or closed early: the client went away.
        if stats.end == "open":
            stats.end = "client_gone"
        await self._stream.close()
        if self._on_end is not None:
            self._on_end(stats)

    async def _relay(self) -> AsyncIterator[bytes]:
        stream = self._stream
        stats = stream.stats
        try:
            yield b"".join(stream.held)
            if stream.finished:
                return
            response = stream.response
            idle_timeout = stream.idle_timeout
            framer = stream.framer
            while True:
                try:
                    chunk = await response.chunk(idle_timeout)
                except TimeoutError:
                    stats.end = "stall"
                    yield sse_error_frame(504, "upstream stream stalled; the answer is incomplete")
                    return
                except TransportError:
                    stats.end = "cut"
                    yield sse_error_frame(502, "upstream connection lost mid-stream; the answer is incomplete")
                    return
                if not chunk:
                    if stats.end == "open":
                        stats.end = "cut"
                        yield sse_error_frame(502, "upstream stream ended early; the answer is incomplete")
                    return
                out = _relay_frames(framer.feed(chunk), stats)
                if out:
                    yield out
                if stats.end not in ("open", "complete", "upstream_error"):
                    return
        finally:
            await self._finish()


def _relay_frames(frames: list[Frame], stats: StreamStats) -> bytes:
    parts: list[bytes] = []
    for frame in frames:
        problem, _ = _check(frame, stats)
        if problem:
            parts.append(sse_error_frame(502, "upstream sent a malformed event; the answer is incomplete"))
            stats.end = "malformed"
            break
        parts.append(frame.raw)
        if frame.event == "message_stop":
            stats.end = "complete"
        elif frame.event == "error":
            stats.end = "upstream_error"
    return b"".join(parts)
