"""Streaming with a commit point.

Before the commit point nothing has reached the client, so any failure (an HTTP error, an ``error`` event,
a cut connection, a malformed frame, no content before the first-content deadline) falls back to the next
target invisibly. Everything is held back until the first event that is part of the answer
(``COMMIT_EVENTS``: normally a ``content_block_delta``): ``message_start``, ``ping``,
``content_block_start``, SSE comment frames and event types the router does not know are not an answer
yet, and an ``error`` after them still falls back. A stream whose first answer event is ``message_stop``
is complete (an empty answer), not cut.
After the commit point the upstream's bytes are relayed frame by frame, unchanged, and any failure ends
the stream with an Anthropic ``event: error`` frame -- never with a clean end that looks like success.

The wire format is a ``StreamFormat``: how one frame is read (is it content, the end, an error; its usage)
and how a failure is written to the client. ``MESSAGES_STREAM`` is the Messages API's; other dialects
(``router.gateway.openai``) bring their own, and the commit point, fallback and relay are the same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from router.gateway import usage
from router.gateway.dispatch import transport_failure
from router.errors import FrameTooLarge, TransportError, sse_error_frame
from router.upstream.transport import Response
from router.gateway.headers import downstream_headers
from router.gateway.outcome import Failure, error_status_for_event, http_failure, stream_error_failure
from router.gateway.plan import Target
from router.gateway.sse import Frame, SSEFramer
from router.gateway.outbound import Outbound

# The events that commit a stream: the answer itself. Anything else before one of them is held back (a
# block's start alone is not yet an answer, and holding it costs nothing: its first delta follows at once)
# so that fallback stays possible. An allowlist, not a list of held events: a comment frame or an event
# type from a newer API version must not commit a stream that then fails.
COMMIT_EVENTS = frozenset({"content_block_delta", "content_block_stop", "message_delta", "message_stop"})

# What a frame is, as a format's ``check`` reads it: not the answer yet (held before the commit point,
# relayed after it), part of the answer (commits), the answer's end (commits and completes the stream), an
# upstream error, or a frame the client must not see (dropped; it does not commit).
HOLD, CONTENT, END, ERROR, DROP = 0, 1, 2, 3, 4
_KIND_BY_EVENT = {
    "content_block_delta": CONTENT,
    "content_block_stop": CONTENT,
    "message_delta": CONTENT,
    "message_stop": END,
    "error": ERROR,
}

CHARS_PER_TOKEN = 4
"""For a stream that ends before its final ``message_delta`` (the client left, the upstream cut): output
tokens are estimated from the text relayed, about four characters per token (at least one per delta)."""


class StreamStats:
    """What the relay learned while passing bytes through: usage, timing and how the stream ended."""

    __slots__ = ("delta_chars", "deltas", "end", "final_usage", "first_content_at", "usage")

    def __init__(self) -> None:
        self.first_content_at: float | None = None
        self.usage = usage.empty()
        """Input, output and prompt-cache tokens as the events reported them (``router.gateway.usage``)."""
        self.end = "open"
        """``complete``, ``upstream_error``, ``cut``, ``stall``, ``malformed``, ``oversize``, ``client_gone``,
        ``shutdown`` or ``open``."""
        self.deltas = 0
        self.delta_chars = 0
        """Content deltas seen and the characters of text (or tool input, thinking) they carried."""
        self.final_usage = False
        """The ``message_delta`` with the answer's output tokens arrived."""

    def settle_output(self) -> None:
        """Output tokens for a stream that ended without its ``message_delta``: the estimate from the deltas
        relayed (``CHARS_PER_TOKEN``), so a client that leaves early still pays for what it received."""
        if self.final_usage:
            return
        estimate = max(self.deltas, -(-self.delta_chars // CHARS_PER_TOKEN))
        if estimate > self.usage["output_tokens"]:
            self.usage["output_tokens"] = estimate


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
        fmt: StreamFormat | None = None,
    ) -> None:
        self.fmt = MESSAGES_STREAM if fmt is None else fmt
        """The wire format being relayed (the Messages API's by default)."""
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


Check = Callable[[Frame, StreamStats], tuple["str | None", int, Any]]
"""Reads one frame: (problem -- ``malformed`` or None --, its kind: ``HOLD`` ... ``DROP``, decoded data),
folding its usage and content size into the stats."""


class StreamFormat(msgspec.Struct, frozen=True):
    """One API's stream wire format, as the commit point and the relay need it."""

    check: Check
    error_frame: Callable[[int, str], bytes]
    """The frame that ends a committed stream that failed (status, message)."""
    event_failure: Callable[[str, Any, "str | None"], Failure]
    """The failure for an upstream error frame before content (model, decoded frame, request id)."""


def _check(frame: Frame, stats: StreamStats) -> tuple[str | None, int, Any]:
    """Decode a Messages frame's data (see ``Check``). The deltas, the bulk of a stream, take the shortest
    path (their kind is known without the table)."""
    event = frame.event
    if not frame.data:
        return None, _KIND_BY_EVENT.get(event, HOLD), None  # type: ignore[arg-type]
    try:
        decoded = frame.json()
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return "malformed", HOLD, None
    if event == "content_block_delta":
        stats.deltas += 1
        delta = decoded.get("delta") if isinstance(decoded, dict) else None
        if isinstance(delta, dict):
            for key in ("text", "partial_json", "thinking"):
                piece = delta.get(key)
                if isinstance(piece, str):
                    stats.delta_chars += len(piece)
                    break
        return None, CONTENT, decoded
    if event == "message_delta":
        usage.merge_event(stats.usage, event, decoded)
        stats.final_usage = True
        return None, CONTENT, decoded
    if event == "message_start":
        usage.merge_event(stats.usage, event, decoded)
        return None, HOLD, decoded
    return None, _KIND_BY_EVENT.get(event, HOLD), decoded  # type: ignore[arg-type]  # no event line: HOLD


def _event_failure(model: str, decoded: object, request_id: str | None) -> Failure:
    error = decoded.get("error") if isinstance(decoded, dict) else None
    error_type = error.get("type", "api_error") if isinstance(error, dict) else "api_error"
    status = error_status_for_event(str(error_type))
    body = msgspec.json.encode(decoded) if isinstance(decoded, dict) else None
    return stream_error_failure(model, str(error_type), status, body, request_id)


MESSAGES_STREAM = StreamFormat(_check, sse_error_frame, _event_failure)
"""The Messages API's stream: named events, ``message_stop`` ends it, ``event: error`` frames."""


async def open_stream(
    out: Outbound,
    target: Target,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    fmt: StreamFormat = MESSAGES_STREAM,
) -> OpenStream | Failure:
    """One streaming attempt, read up to the commit point, in the wire format ``fmt``."""
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
            return await _read_to_commit(response, settings.stream_idle_timeout, target, stats, clock, fmt)
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
    response: Response,
    idle_timeout: float,
    target: Target,
    stats: StreamStats,
    clock: Callable[[], float],
    fmt: StreamFormat = MESSAGES_STREAM,
) -> OpenStream | Failure:
    framer = SSEFramer()
    held: list[bytes] = []
    check = fmt.check
    while True:
        chunk = await response.chunk(idle_timeout)
        if not chunk:
            response.close()
            return transport_failure(target.model, "cut", "upstream stream ended before content")
        committed = False
        for frame in framer.feed(chunk):
            problem, kind, decoded = check(frame, stats)
            if not committed:
                if problem:
                    response.close()
                    return transport_failure(target.model, "malformed", "upstream sent a malformed event")
                if kind == ERROR:
                    response.close()
                    return fmt.event_failure(target.model, decoded, response.get("request-id"))
                if kind == DROP:
                    continue
                held.append(frame.raw)
                if kind == CONTENT or kind == END:
                    committed = True
                    stats.first_content_at = clock()
                    if kind == END:
                        stats.end = "complete"  # an empty answer is an answer: nothing is missing
                continue
            # Later frames of the committing chunk: relay them as the relay loop would.
            if stats.end != "open":
                break  # the end frame already ended it; anything after is not part of the answer
            if problem:
                held.append(fmt.error_frame(502, "upstream sent a malformed event"))
                stats.end = "malformed"
                break
            if kind == DROP:
                continue
            held.append(frame.raw)
            if kind == END or kind == ERROR:
                stats.end = "complete" if kind == END else "upstream_error"
        if committed:
            headers = downstream_headers(response.headers)
            return OpenStream(response, idle_timeout, headers, held, framer, stats, stats.end != "open", fmt)


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

    def mark_end(self, end: str) -> None:
        """Say how the stream is about to end, from outside (the server's drain deadline: ``shutdown``),
        before the relay is cancelled or closed; the caller writes the closing ``event: error`` frame."""
        if self._stream.stats.end == "open":
            self._stream.stats.end = end

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
        stats.settle_output()
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
            fmt = stream.fmt
            error_frame = fmt.error_frame
            while True:
                try:
                    chunk = await response.chunk(idle_timeout)
                except TimeoutError:
                    stats.end = "stall"
                    yield error_frame(504, "upstream stream stalled; the answer is incomplete")
                    return
                except TransportError:
                    stats.end = "cut"
                    yield error_frame(502, "upstream connection lost mid-stream; the answer is incomplete")
                    return
                if not chunk:
                    if stats.end == "open":
                        stats.end = "cut"
                        yield error_frame(502, "upstream stream ended early; the answer is incomplete")
                    return
                try:
                    frames = framer.feed(chunk)
                except FrameTooLarge as exc:
                    stats.end = "oversize"
                    yield error_frame(502, f"{exc.message}; the answer is incomplete")
                    return
                out = _relay_frames(frames, stats, fmt)
                if out:
                    yield out
                if stats.end not in ("open", "complete", "upstream_error"):
                    return
        finally:
            await self._finish()


def _relay_frames(frames: list[Frame], stats: StreamStats, fmt: StreamFormat = MESSAGES_STREAM) -> bytes:
    parts: list[bytes] = []
    check = fmt.check
    for frame in frames:
        problem, kind, _ = check(frame, stats)
        if problem:
            parts.append(fmt.error_frame(502, "upstream sent a malformed event; the answer is incomplete"))
            stats.end = "malformed"
            break
        if kind < END:  # the common case: part of the answer, or not yet
            parts.append(frame.raw)
            continue
        if kind == DROP:
            continue
        parts.append(frame.raw)
        stats.end = "complete" if kind == END else "upstream_error"
    return b"".join(parts)
