"""``POST /v1/messages``: the non-streaming and SSE answers, paced by the latency profile, with faults.

Owns the order and timing of what is written for one messages request, including where a mid-stream
fault (stall, cut, error event, malformed frame) interrupts the normal event sequence. Content comes from
``content``; error statuses and connection drops from ``breaks``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from router.sim.breaks import abort_connection, json_answer, pause, status_fault_response
from router.sim.config import FaultRule, LatencyProfile
from router.sim.content import (
    Answer,
    block_delta,
    block_start,
    block_stop,
    estimate_input_tokens,
    message_body,
    message_delta,
    message_start,
    new_id,
    plan_answer,
    usage,
)
from router.sim.intake import receive, reject
from router.sim.state import STATE_KEY, SimState
from router.sim.wire import comment_frame, malformed_frame, sse_frame, stream_error_frame

# Bytes per write for the one huge frame of ``oversize``: how a real network delivers it.
HUGE_WRITE_BYTES = 64 << 10
# ``trickle``: bytes per write, and the pause between writes.
TRICKLE_BYTES = 5
TRICKLE_PAUSE_S = 0.001

# Stream fault kind -> (what happens, whether it waits for after_events deltas first).
STREAM_BREAKS: dict[str, tuple[str, bool]] = {
    "stall": ("stall", False),
    "stall_after_content": ("stall", True),
    "cut": ("cut", True),
    "error_before_content": ("error", False),
    "error_after_content": ("error", True),
    "malformed": ("malformed", False),
    "malformed_after_content": ("malformed", True),
}


class Reply(msgspec.Struct, frozen=True):
    """Everything one answer is made from, decided before the first byte is written."""

    headers: dict[str, str]
    rule: FaultRule | None
    profile: LatencyProfile
    answer: Answer
    model: str
    msg_id: str
    input_tokens: int

    @property
    def cache(self) -> dict[str, int]:
        """``cache_read`` / ``cache_creation`` keyword arguments for the usage objects (``prompt_cache``)."""
        rule = self.rule
        if rule is None or rule.kind != "prompt_cache":
            return {}
        return {"cache_read": rule.cache_read_tokens, "cache_creation": rule.cache_creation_tokens}


def _response_headers(reply: Reply, content_type: str, **extra: str) -> CIMultiDict[str]:
    """The answer's headers; ``extra_headers`` adds what a router must not relay, and repeats some."""
    headers: CIMultiDict[str] = CIMultiDict({**reply.headers, "content-type": content_type, **extra})
    if reply.rule is not None and reply.rule.kind == "extra_headers":
        headers.add("set-cookie", "sim_session=1; Path=/")
        headers.add("set-cookie", "sim_tracking=2; Path=/")
        headers.add("anthropic-organization-id", "org-sim-0001")
        headers.add("x-sim-internal", "node-7")
        headers.add("x-should-retry", "true")
    return headers


async def handle_messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    received = await receive(request, state, "messages")
    rejected = reject(received, state, ("model", "messages", "max_tokens"))
    if rejected is not None:
        return rejected
    body: dict[str, Any] = received.body
    model: str = body["model"]
    stream = body.get("stream") is True
    rule = state.faults.select(model, "messages")
    if rule is not None:
        state.note_fault(received.entry, rule)
        failed = status_fault_response(rule, received.headers, stream=stream)
        if failed is not None:
            return failed
        if rule.kind == "connect_refused":
            abort_connection(request)
            return web.Response(status=204)  # never delivered: the connection is already gone
    profile = state.profile_for(model)
    answer = plan_answer(body, profile, state.seed)
    input_tokens = estimate_input_tokens(received.raw)
    if rule is not None and rule.kind == "prompt_cache" and rule.input_tokens is not None:
        input_tokens = rule.input_tokens
    reply = Reply(received.headers, rule, profile, answer, model, new_id("msg_sim_"), input_tokens)
    return await (_stream if stream else _single)(request, state, reply)


def _generation_seconds(profile: LatencyProfile, tokens: int) -> float:
    return tokens / profile.tokens_per_s if profile.tokens_per_s > 0 else 0.0


async def _single(request: web.Request, state: SimState, reply: Reply) -> web.StreamResponse:
    rule, profile, answer = reply.rule, reply.profile, reply.answer
    model, msg_id, input_tokens = reply.model, reply.msg_id, reply.input_tokens
    if rule is not None and rule.kind == "stall":
        await pause(state, rule.stall_s)  # before the response head: the client sees nothing at all
    # A non-streaming call returns when generation is done: time to first token plus generation time.
    await pause(state, profile.ttft_ms / 1000 + _generation_seconds(profile, answer.output_tokens))
    if rule is not None and rule.kind == "oversize":
        answer = dataclasses.replace(answer, block={"type": "text", "text": "x" * rule.frame_bytes})
    body = message_body(answer, model=model, msg_id=msg_id, input_tokens=input_tokens, **reply.cache)
    data = json.dumps(body).encode()
    return await json_answer(request, data, _response_headers(reply, "application/json"), rule)


async def _stream(request: web.Request, state: SimState, reply: Reply) -> web.StreamResponse:
    rule, profile, answer = reply.rule, reply.profile, reply.answer
    model, msg_id, input_tokens = reply.model, reply.msg_id, reply.input_tokens
    response = web.StreamResponse(
        status=200,
        headers=_response_headers(reply, "text/event-stream; charset=utf-8", **{"cache-control": "no-cache"}),
    )
    await response.prepare(request)
    kind = rule.kind if rule is not None else None
    if kind == "fragmented":
        response = _Fragmenting(response)  # type: ignore[assignment]
    elif kind == "trickle":
        response = _Trickling(response)  # type: ignore[assignment]
    cache = reply.cache
    start = message_start(model=model, msg_id=msg_id, input_tokens=input_tokens, **cache)
    # Each event is its own write so it leaves immediately (aiohttp enables TCP_NODELAY on accept).
    await response.write(sse_frame("message_start", start))
    await response.write(sse_frame("ping", {"type": "ping"}))
    if kind == "novel_events" or (rule is not None and rule.comments):
        await response.write(sse_frame("thread_hint", {"type": "thread_hint", "note": "an event type from the future"}))
    if kind == "comment_frames" or (rule is not None and rule.comments):
        await response.write(comment_frame("sim keep-alive"))
    if kind == "empty_stream":
        await response.write(sse_frame("message_stop", {"type": "message_stop"}))
        await response.write_eof()
        return response

    action, at = _stream_break(rule)
    stall_s = rule.stall_s if rule is not None else 0.0
    if action is not None and at is None:
        if action == "stall":
            await pause(state, stall_s)
        else:
            await pause(state, profile.ttft_ms / 1000)
            await _end_with(response, action)
            return response
        action = None

    await pause(state, profile.ttft_ms / 1000)
    await response.write(sse_frame("content_block_start", block_start(answer)))
    if kind == "oversize" and rule is not None:
        await _write_huge_delta(response, answer, rule.frame_bytes)
    for index, (piece, tokens) in enumerate(zip(answer.pieces, answer.piece_tokens)):
        if action is not None and index == at:
            if await _break_mid_stream(request, state, response, action, stall_s):
                return response
            action = None
        await pause(state, _generation_seconds(profile, tokens))
        await response.write(sse_frame("content_block_delta", block_delta(answer, piece)))
        if kind == "comment_frames":
            await response.write(comment_frame("sim keep-alive"))
        if kind == "novel_events" and index == 0:
            await response.write(sse_frame("content_block_annotation", {"type": "content_block_annotation", "index": 0}))
    if action is not None:
        # after_events at or beyond the answer's length: break once every delta is out, before the block ends.
        if await _break_mid_stream(request, state, response, action, stall_s):
            return response
    await response.write(sse_frame("content_block_stop", block_stop()))
    # With prompt caching the final message_delta carries the whole cumulative usage, cache fields included.
    cumulative = usage(input_tokens, answer.output_tokens, **cache) if cache else None
    await response.write(sse_frame("message_delta", message_delta(answer, cumulative)))
    await response.write(sse_frame("message_stop", {"type": "message_stop"}))
    await response.write_eof()
    return response


class _Fragmenting:
    """Writes every frame in three pieces with a short gap, so a reader sees frames split across reads."""

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response

    async def write(self, data: bytes) -> None:
        third = max(len(data) // 3, 1)
        for start in range(0, len(data), third):
            await self._response.write(data[start : start + third])
            await asyncio.sleep(0.002)

    async def write_eof(self) -> None:
        await self._response.write_eof()


class _Trickling:
    """Writes every frame a few bytes at a time with a pause: a slow link, or a proxy that flushes often."""

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), TRICKLE_BYTES):
            await self._response.write(data[start : start + TRICKLE_BYTES])
            await asyncio.sleep(TRICKLE_PAUSE_S)

    async def write_eof(self) -> None:
        await self._response.write_eof()


async def _write_huge_delta(response: web.StreamResponse, answer: Answer, size: int) -> None:
    """``oversize``: one ``content_block_delta`` of ``size`` text bytes, in 64 KiB writes, before the normal
    deltas (the frame's JSON framing adds a few dozen bytes)."""
    frame = sse_frame("content_block_delta", block_delta(answer, "x" * size))
    for start in range(0, len(frame), HUGE_WRITE_BYTES):
        await response.write(frame[start : start + HUGE_WRITE_BYTES])


def _stream_break(rule: FaultRule | None) -> tuple[str | None, int | None]:
    """(action, number of deltas sent first) for a stream fault; ``None`` deltas = right after ``ping``."""
    if rule is None or rule.kind not in STREAM_BREAKS:
        return None, None
    action, after_content = STREAM_BREAKS[rule.kind]
    return action, (rule.after_events if after_content else None)


async def _end_with(response: web.StreamResponse, action: str) -> None:
    """Finish the stream with an ``error`` event or a malformed frame, and no ``message_stop``."""
    await response.write(stream_error_frame() if action == "error" else malformed_frame())
    await response.write_eof()


async def _break_mid_stream(
    request: web.Request, state: SimState, response: web.StreamResponse, action: str, stall_s: float
) -> bool:
    """Apply a mid-stream fault; True when the stream is over (cut/error/malformed), False after a stall."""
    if action == "stall":
        await pause(state, stall_s)
        return False
    if action == "cut":
        abort_connection(request)
        return True
    await _end_with(response, action)
    return True
