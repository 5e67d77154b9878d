"""``POST /v1/chat/completions``: the OpenAI-compatible endpoint, as Anthropic's API offers it.

JSON (``object: chat.completion``: choices, usage) and SSE (``data: {chunk}`` lines of ``object:
chat.completion.chunk``, a final usage chunk when ``stream_options.include_usage``, then ``data:
[DONE]``), paced by the latency profile. With ``tools`` and a ``tool_choice`` of ``required`` or a named
function the answer is one tool call whose arguments follow the function's JSON schema. Faults are the
same kinds as for ``/v1/messages`` (``oversize``, ``novel_events`` and ``extra_headers`` excepted; rules with ``endpoint: chat_completions`` or ``*``), written in this
API's shapes: errors as ``{"error": {"message", "type", "param", "code"}}``, a mid-stream error as a
``data:`` chunk holding ``error``. The answer's content comes from ``content.plan_answer`` (the same
text for the same conversation as the Messages endpoint gives).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from router.sim.breaks import abort_connection, json_answer, pause
from router.sim.config import JSON_ONLY_KINDS, STREAM_ONLY_KINDS, FaultRule, LatencyProfile
from router.sim.content import Answer, estimate_input_tokens, new_id, plan_answer
from router.sim.intake import receive
# The same stream faults and wire variations as the Messages stream.
from router.sim.messages import STREAM_BREAKS, _Fragmenting, _Trickling
from router.sim.state import STATE_KEY, SimState
from router.sim.wire import ERROR_MESSAGES, ERROR_TYPES, retry_after_value

_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def error_response(status: int, headers: dict[str, str], message: str | None = None, param: str | None = None) -> web.Response:
    """An error in the OpenAI shape, with the API's status -> type vocabulary."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message or ERROR_MESSAGES.get(kind, kind), "type": kind, "param": param, "code": None}}
    return web.Response(body=json.dumps(body).encode(), status=status, headers={**headers, "content-type": "application/json"})


def _reject(body: Any, parse_error: str | None, headers: dict[str, str]) -> web.Response | None:
    if parse_error is not None:
        return error_response(400, headers, parse_error)
    if not isinstance(body, dict):
        return error_response(400, headers, "The request body must be a JSON object")
    if not isinstance(body.get("model"), str):
        return error_response(400, headers, "model: Field required (a string)", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error_response(400, headers, "messages: Input should be a non-empty array", "messages")
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return error_response(400, headers, f"{key}: Input should be an integer >= 1", key)
    if "does-not-exist" in body["model"]:
        return error_response(404, headers, f"model: {body['model']}", "model")
    return None


def _status_fault(rule: FaultRule, headers: dict[str, str], stream: bool) -> web.Response | None:
    """The error a fault calls for before any 200 (as ``breaks.status_fault_response``, in this shape)."""
    if rule.kind == "rate_limit":
        limited = {**headers, "retry-after": retry_after_value(rule.retry_after)}
        limited["anthropic-ratelimit-requests-remaining"] = "0"
        return error_response(429, limited)
    if rule.kind == "overloaded" or rule.kind in (JSON_ONLY_KINDS if stream else STREAM_ONLY_KINDS):
        return error_response(529, headers)
    if rule.kind == "server_error":
        return error_response(rule.status or 500, headers)
    if rule.kind == "invalid_request":
        return error_response(400, headers, "max_tokens: this model accepts fewer output tokens (simulated)", "max_tokens")
    return None


def forced_function(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function a request forces: ``tool_choice`` ``required`` (the first) or ``{"type": "function",
    "function": {"name": ...}}``; None for ``auto``/``none`` or without tools."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list):
        return None
    functions = [t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
                 and isinstance(t["function"].get("name"), str)]
    if not functions:
        return None
    if choice == "required":
        return functions[0]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        return next((f for f in functions if f["name"] == name), None)
    return None


def _as_messages_body(body: dict[str, Any]) -> dict[str, Any]:
    """What ``plan_answer`` reads, from a chat body: the conversation, the output limit, a forced tool."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    shaped: dict[str, Any] = {"model": body["model"], "messages": body["messages"]}
    if isinstance(limit, int):
        shaped["max_tokens"] = limit
    function = forced_function(body)
    if function is not None:
        schema = function.get("parameters")
        shaped["tools"] = [{"name": function["name"], "input_schema": schema if isinstance(schema, dict) else {}}]
        shaped["tool_choice"] = {"type": "tool", "name": function["name"]}
    return shaped


def _usage(input_tokens: int, output_tokens: int, cached: int) -> dict[str, Any]:
    prompt = input_tokens + cached
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output_tokens,
        "total_tokens": prompt + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


class _Reply:
    """Everything one answer is made from, decided before the first byte is written."""

    def __init__(self, body: dict[str, Any], headers: dict[str, str], rule: FaultRule | None,
                 profile: LatencyProfile, answer: Answer, input_tokens: int) -> None:
        self.headers = headers
        self.rule = rule
        self.profile = profile
        self.answer = answer
        self.model: str = body["model"]
        self.id = new_id("chatcmpl-sim")
        self.created = int(time.time())
        self.input_tokens = input_tokens
        self.cached = rule.cache_read_tokens if rule is not None and rule.kind == "prompt_cache" else 0
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(self, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None, choices: bool = True) -> bytes:
        data: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
        data["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}] if choices else []
        if self.include_usage:
            data["usage"] = usage
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def handle_chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    received = await receive(request, state, "chat_completions")
    rejected = _reject(received.body, received.parse_error, received.headers)
    if rejected is not None:
        return rejected
    body: dict[str, Any] = received.body
    state.note_model(received.entry, body["model"])
    stream = body.get("stream") is True
    rule = state.faults.select(body["model"], "chat_completions")
    if rule is not None:
        state.note_fault(received.entry, rule)
        failed = _status_fault(rule, received.headers, stream)
        if failed is not None:
            return failed
        if rule.kind == "connect_refused":
            abort_connection(request)
            return web.Response(status=204)  # never delivered: the connection is already gone
    profile = state.profile_for(body["model"])
    answer = plan_answer(_as_messages_body(body), profile, state.seed)
    input_tokens = estimate_input_tokens(received.raw)
    if rule is not None and rule.kind == "prompt_cache" and rule.input_tokens is not None:
        input_tokens = rule.input_tokens
    reply = _Reply(body, received.headers, rule, profile, answer, input_tokens)
    return await (_stream if stream else _single)(request, state, reply)


def _seconds(profile: LatencyProfile, tokens: int) -> float:
    return tokens / profile.tokens_per_s if profile.tokens_per_s > 0 else 0.0


def _message(answer: Answer) -> dict[str, Any]:
    block = answer.block
    if answer.is_tool_use:
        call = {"id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": json.dumps(block["input"])}}
        return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
    return {"role": "assistant", "content": block["text"], "refusal": None}


async def _single(request: web.Request, state: SimState, reply: _Reply) -> web.StreamResponse:
    rule, answer = reply.rule, reply.answer
    if rule is not None and rule.kind == "stall":
        await pause(state, rule.stall_s)
    await pause(state, reply.profile.ttft_ms / 1000 + _seconds(reply.profile, answer.output_tokens))
    body = {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "message": _message(answer), "logprobs": None,
                     "finish_reason": _FINISH.get(answer.stop_reason, "stop")}],
        "usage": _usage(reply.input_tokens, answer.output_tokens, reply.cached),
    }
    data = json.dumps(body).encode()
    return await json_answer(request, data, {**reply.headers, "content-type": "application/json"}, rule)


def _error_chunk() -> bytes:
    error = {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


_MALFORMED_CHUNK = b'data: {"id":"chatcmpl-sim","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"cont\n\n'


def _deltas(reply: _Reply) -> list[tuple[dict[str, Any], int]]:
    """Each content chunk's delta and the tokens it carries."""
    answer = reply.answer
    if not answer.is_tool_use:
        return [({"content": piece}, tokens) for piece, tokens in zip(answer.pieces, answer.piece_tokens)]
    block = answer.block
    opening = {"tool_calls": [{"index": 0, "id": block["id"], "type": "function",
                               "function": {"name": block["name"], "arguments": ""}}]}
    pieces = [({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, tokens)
              for piece, tokens in zip(answer.pieces, answer.piece_tokens)]
    return [(opening, 0), *pieces]


async def _stream(request: web.Request, state: SimState, reply: _Reply) -> web.StreamResponse:
    rule, profile, answer = reply.rule, reply.profile, reply.answer
    headers = {**reply.headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    prepared = web.StreamResponse(status=200, headers=headers)
    await prepared.prepare(request)
    response: Any = prepared
    if rule is not None and rule.kind == "fragmented":
        response = _Fragmenting(prepared)
    elif rule is not None and rule.kind == "trickle":
        response = _Trickling(prepared)
    await response.write(reply.chunk({"role": "assistant", "content": ""}))
    if rule is not None and rule.kind == "comment_frames":
        await response.write(b": sim keep-alive\n\n")
    action, at = (None, None)
    if rule is not None and rule.kind in STREAM_BREAKS:
        action, after_content = STREAM_BREAKS[rule.kind]
        at = rule.after_events if after_content else None
    stall_s = rule.stall_s if rule is not None else 0.0
    if action is not None and at is None:
        if action == "stall":
            await pause(state, stall_s)
            action = None
        else:
            await pause(state, profile.ttft_ms / 1000)
            await response.write(_error_chunk() if action == "error" else _MALFORMED_CHUNK)
            await response.write_eof()
            return prepared
    if rule is not None and rule.kind == "empty_stream":
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return prepared
    await pause(state, profile.ttft_ms / 1000)
    deltas = _deltas(reply)
    for index, (delta, tokens) in enumerate(deltas):
        if action is not None and index == at:
            if await _break(request, state, response, action, stall_s):
                return prepared
            action = None
        await pause(state, _seconds(profile, tokens))
        await response.write(reply.chunk(delta))
        if rule is not None and rule.kind == "comment_frames":
            await response.write(b": sim keep-alive\n\n")
    if action is not None and await _break(request, state, response, action, stall_s):
        return prepared
    await response.write(reply.chunk({}, _FINISH.get(answer.stop_reason, "stop")))
    if reply.include_usage:
        usage = _usage(reply.input_tokens, answer.output_tokens, reply.cached)
        await response.write(reply.chunk(None, usage=usage, choices=False))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return prepared


async def _break(request: web.Request, state: SimState, response: Any, action: str, stall_s: float) -> bool:
    """A mid-stream fault; True when the stream is over (cut, error chunk, malformed chunk)."""
    if action == "stall":
        await pause(state, stall_s)
        return False
    if action == "cut":
        abort_connection(request)
        return True
    await response.write(_error_chunk() if action == "error" else _MALFORMED_CHUNK)
    await response.write_eof()
    return True
