"""``POST /v1/messages``: the non-streaming and SSE answers, paced by the latency profile, with faults.

Owns the order and timing of what is written for one messages request, including where a mid-stream
fault (stall, cut, error event, malformed frame) interrupts the normal event sequence. Content comes from
``content``; error statuses and connection drops from ``breaks``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from aiohttp import web

from router.sim.breaks import abort_connection, pause, status_fault_response
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
)
from router.sim.intake import receive, reject
from router.sim.state import STATE_KEY, SimState
from router.sim.wire import malformed_frame, sse_frame, stream_error_frame

# Stream fault kind -> (what happens, whether it waits for after_events deltas first).
_STREAM_BREAKS: dict[str, tuple[str, bool]] = {
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
    reply = Reply(received.headers, rule, profile, answer, model, new_id("msg_sim_"), input_tokens)
    return await (_stream if stream else _single)(request, state, reply)


def _generation_seconds(profile: LatencyProfile, tokens: int) -> float:
    return tokens / profile.tokens_per_s if profile.tokens_per_s > 0 else 0.0


async def _single(request: web.Request, state: SimState, reply: Reply) -> web.StreamResponse:
    headers, rule, profile, answer = reply.headers, reply.rule, reply.profile, reply.answer
    model, msg_id, input_tokens = reply.model, reply.msg_id, reply.input_tokens
    if rule is not None and rule.kind == "stall":
        await pause(state, rule.stall_s)
    # A non-streaming call returns when generation is done: time to first token plus generation time.
    await pause(state, profile.ttft_ms / 1000 + _generation_seconds(profile, answer.output_tokens))
    payload = json.dumps(message_body(answer, model=model, msg_id=msg_id, input_tokens=input_tokens))
    data = payload.encode()
    if rule is None or rule.kind != "cut":
        return web.Response(body=data, status=200, headers={**headers, "content-type": "application/json"})
    # Promise the full length, deliver half, then reset: the client sees a truncated body.
    response = web.StreamResponse(status=200, headers={**headers, "content-type": "application/json"})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    abort_connection(request)
    return response


async def _stream(request: web.Request, state: SimState, reply: Reply) -> web.StreamResponse:
    headers, rule, profile, answer = reply.headers, reply.rule, reply.profile, reply.answer
    model, msg_id, input_tokens = reply.model, reply.msg_id, reply.input_tokens
    response = web.StreamResponse(
        status=200,
        headers={**headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
    )
    await response.prepare(request)
    kind = rule.kind if rule is not None else None
    if kind == "fragmented":
        response = _Fragmenting(response)  # type: ignore[assignment]
    # Each event is its own write so it leaves immediately (aiohttp enables TCP_NODELAY on accept).
    await response.write(sse_frame("message_start", message_start(model=model, msg_id=msg_id, input_tokens=input_tokens)))
    await response.write(sse_frame("ping", {"type": "ping"}))
    if kind == "novel_events":
        await response.write(sse_frame("thread_hint", {"type": "thread_hint", "note": "an event type from the future"}))

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
    for index, (piece, tokens) in enumerate(zip(answer.pieces, answer.piece_tokens)):
        if action is not None and index == at:
            if await _break_mid_stream(request, state, response, action, stall_s):
                return response
            action = None
        await pause(state, _generation_seconds(profile, tokens))
        await response.write(sse_frame("content_block_delta", block_delta(answer, piece)))
        if kind == "novel_events" and index == 0:
            await response.write(sse_frame("content_block_annotation", {"type": "content_block_annotation", "index": 0}))
    if action is not None:
        # after_events at or beyond the answer's length: break once every delta is out, before the block ends.
        if await _break_mid_stream(request, state, response, action, stall_s):
            return response
    await response.write(sse_frame("content_block_stop", block_stop()))
    await response.write(sse_frame("message_delta", message_delta(answer)))
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


def _stream_break(rule: FaultRule | None) -> tuple[str | None, int | None]:
    """(action, number of deltas sent first) for a stream fault; ``None`` deltas = right after ``ping``."""
    if rule is None or rule.kind not in _STREAM_BREAKS:
        return None, None
    action, after_content = _STREAM_BREAKS[rule.kind]
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
