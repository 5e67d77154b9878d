"""The OpenAI dialect's pure parts: the request view and its Messages-shaped reading, the usage reader, the
stream frame checker and the error envelope."""

from __future__ import annotations

import json

import msgspec
import pytest

from router.errors import AuthenticationFailed, BudgetExceeded, InvalidRequest
from router.gateway.openai import errors, usage
from router.gateway.openai.request import messages_view, parse_chat, strip_usage
from router.gateway.openai.stream import CHAT_STREAM, CHAT_STREAM_STRIP_USAGE
from router.gateway.sse import SSEFramer
from router.gateway.stream import CONTENT, DROP, END, ERROR, HOLD, StreamStats
from router.gateway.view import body_for_model


def body(**fields) -> bytes:
    return json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields}).encode()


def test_messages_view_hoists_system_and_maps_parts_tools_and_tool_results():
    chat = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "12 C"},
            {"role": "tool", "tool_call_id": "c2", "content": "13 C"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [{"type": "function", "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}}}],
    }
    view = messages_view(chat)
    assert view["system"] == "Be terse.\n\nUse metric units."
    assert view["tools"] == [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}]
    roles = [m["role"] for m in view["messages"]]
    assert roles == ["user", "assistant", "user"], "tool results and the next user turn are one user turn"
    assert view["messages"][0]["content"] == [{"type": "text", "text": "Weather?"}, {"type": "image"}]
    assert view["messages"][1]["content"] == [{"type": "tool_use", "id": "c1", "name": "w", "input": {}}]
    last = view["messages"][2]["content"]
    assert [b["type"] for b in last] == ["tool_result", "tool_result", "text"] and last[2]["text"] == "And tomorrow?"


def test_messages_view_is_lenient():
    assert messages_view({"messages": [None, 3, {"role": "narrator", "content": "x"}, {"role": "user"}]}) == {
        "messages": [{"role": "user", "content": ""}]
    }
    assert messages_view({}) == {"messages": []}


def test_parse_reads_the_view_and_keeps_the_body():
    parsed = parse_chat(body(max_completion_tokens=50, metadata={"user_id": "u"}))
    assert parsed.view.model == "auto" and parsed.view.max_tokens == 50 and not parsed.view.stream
    assert parsed.max_tokens_field == "max_completion_tokens" and parsed.api == "chat.completions"
    assert parsed.raw == body(max_completion_tokens=50, metadata={"user_id": "u"}), "a JSON request is forwarded as sent"
    assert parsed.messages_body == {"messages": [{"role": "user", "content": "hi"}]}
    assert parse_chat(body(max_tokens=7)).max_tokens_field == "max_tokens"


def test_the_clamp_rewrites_the_field_the_client_used():
    parsed = parse_chat(body(max_completion_tokens=100_000))
    sent = json.loads(body_for_model(parsed, "claude-haiku-4-5", max_output_tokens=64_000))
    assert sent["max_completion_tokens"] == 64_000 and "max_tokens" not in sent and sent["model"] == "claude-haiku-4-5"
    sent = json.loads(body_for_model(parse_chat(body(max_tokens=100_000)), "m", max_output_tokens=10))
    assert sent["max_tokens"] == 10 and "max_completion_tokens" not in sent


def test_a_stream_asks_for_usage_and_remembers_who_did():
    parsed = parse_chat(body(stream=True))
    assert json.loads(parsed.raw)["stream_options"] == {"include_usage": True} and strip_usage(parsed)
    kept = parse_chat(body(stream=True, stream_options={"include_usage": True}))
    assert kept.raw == body(stream=True, stream_options={"include_usage": True}) and not strip_usage(kept)
    other = parse_chat(body(stream=True, stream_options={"include_obfuscation": False}))
    assert json.loads(other.raw)["stream_options"] == {"include_obfuscation": False, "include_usage": True}


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"[1]", "JSON object"),
        (b'{"messages": []}', "model: Field required"),
        (b'{"model": "auto"}', "messages: Field required"),
        (b'{"model": "auto", "messages": []}', "at least one message"),
        (b'{"model": "auto", "messages": "hi"}', "cannot read"),
        (b'{"model": 3, "messages": [{}]}', "cannot read"),
        (b'{"model": "a\\nb", "messages": [{}]}', "printable ASCII"),
    ],
)
def test_parse_refuses_what_it_cannot_read(raw, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_chat(raw)


def test_usage_reader_separates_cache_reads():
    answer = {"usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}}}
    assert usage.read_json(json.dumps(answer).encode()) == {
        "input_tokens": 40,
        "output_tokens": 7,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 0,
    }
    assert usage.read_json(b'{"choices": []}') == {}
    assert usage.read_json(b'{"usage": {"prompt_tokens": 3') is None


def frames(*chunks: bytes):
    return SSEFramer().feed(b"".join(chunks))


def data(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def test_stream_check_holds_the_opening_and_commits_on_content():
    stats = StreamStats()
    check = CHAT_STREAM.check
    opening, text, tool, finish, use, done, comment = frames(
        data({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}),
        data({"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}),
        data({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}}]}),
        data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        data({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
        b"data: [DONE]\n\n",
        b": keep-alive\n\n",
    )
    kinds = [check(f, stats)[1] for f in (opening, text, tool, finish, use, done, comment)]
    assert kinds == [HOLD, CONTENT, CONTENT, CONTENT, CONTENT, END, HOLD]
    assert stats.deltas == 2 and stats.delta_chars == len("Hello") + len('{"a"')
    assert stats.final_usage and stats.usage["input_tokens"] == 9 and stats.usage["output_tokens"] == 4
    assert CHAT_STREAM_STRIP_USAGE.check(use, StreamStats())[1] == DROP


def test_stream_check_errors_and_malformed_frames():
    error, named, broken = frames(
        data({"error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}}),
        b"event: error\ndata: {\"type\": \"error\"}\n\n",
        b'data: {"choices": [\n\n',
    )
    problem, kind, decoded = CHAT_STREAM.check(error, StreamStats())
    assert (problem, kind) == (None, ERROR)
    failure = CHAT_STREAM.event_failure("m", decoded, "req_1")
    assert failure.status == 529 and failure.retryable and failure.label == "error_event:overloaded_error"
    assert json.loads(failure.body)["error"]["type"] == "overloaded_error"
    assert CHAT_STREAM.check(named, StreamStats())[1] == ERROR
    assert CHAT_STREAM.check(broken, StreamStats())[0] == "malformed"
    odd = CHAT_STREAM.event_failure("m", {"error": {"type": "bad\r\ntype", "code": 503}}, None)
    assert odd.status == 503 and "\r" not in odd.label and "\n" not in odd.label


def test_error_envelope_shape_param_and_code():
    parsed = json.loads(errors.exception_body(InvalidRequest("messages: Field required")))
    assert parsed == {"error": {"message": "messages: Field required", "type": "invalid_request_error", "param": "messages", "code": None}}
    assert json.loads(errors.exception_body(InvalidRequest("request body is not valid JSON: x")))["error"]["param"] is None
    assert json.loads(errors.exception_body(AuthenticationFailed("no")))["error"]["code"] == "invalid_api_key"
    budget = json.loads(errors.exception_body(BudgetExceeded("spent")))["error"]
    assert budget["type"] == "rate_limit_error" and budget["code"] == "insufficient_quota"
    frame = errors.sse_error_frame(502, "cut")
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    assert msgspec.json.decode(frame[6:-2])["error"]["type"] == "api_error"
