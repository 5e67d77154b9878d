"""The simulator's ``/v1/chat/completions`` through the real OpenAI SDK: JSON, SSE with ``[DONE]`` and the
usage chunk, tool calls, faults in the OpenAI error shape."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three prime numbers."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


def client(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.url + "/v1", api_key="sk-sim", max_retries=0, timeout=10)


def raw_sse(sim, body: dict) -> list[bytes]:
    req = urllib.request.Request(sim.url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [frame for frame in resp.read().split(b"\n\n") if frame]


def test_json_answer_is_a_chat_completion_with_usage(sim):
    completion = client(sim).chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES, max_tokens=50)
    assert completion.object == "chat.completion" and completion.model == "claude-haiku-4-5"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content and choice.finish_reason == "stop"
    usage = completion.usage
    assert usage.completion_tokens == 12 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert sim.requests()[-1]["path"] == "/v1/chat/completions"


def test_max_completion_tokens_limits_the_answer(sim):
    completion = client(sim).chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES, max_completion_tokens=5)
    assert completion.usage.completion_tokens == 5 and completion.choices[0].finish_reason == "length"


def test_stream_ends_with_done_and_a_usage_chunk_only_when_asked(sim):
    body = {"model": "claude-haiku-4-5", "messages": MESSAGES, "stream": True}
    frames = raw_sse(sim, body)
    assert frames[-1] == b"data: [DONE]"
    chunks = [json.loads(f[len(b"data: "):]) for f in frames[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    frames = raw_sse(sim, {**body, "stream_options": {"include_usage": True}})
    chunks = [json.loads(f[len(b"data: "):]) for f in frames[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_through_the_sdk_joins_to_the_json_text(sim):
    sdk = client(sim)
    text = sdk.chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES).choices[0].message.content
    stream = sdk.chat.completions.create(
        model="claude-sonnet-4-6", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage.completion_tokens == 12


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_choice_gives_a_tool_call_following_the_schema(sim, choice):
    sdk = client(sim)
    completion = sdk.chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES, tools=[WEATHER], tool_choice=choice)
    (call,) = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    arguments = json.loads(call.function.arguments)
    assert call.function.name == "get_weather" and isinstance(arguments["city"], str) and isinstance(arguments["days"], int)

    stream = sdk.chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES, tools=[WEATHER], tool_choice=choice, stream=True)
    pieces = [c.choices[0].delta.tool_calls for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert pieces[0][0].function.name == "get_weather" and pieces[0][0].id
    assert json.loads("".join(p[0].function.arguments or "" for p in pieces)) == arguments


def test_auto_tool_choice_answers_in_text(sim):
    completion = client(sim).chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES, tools=[WEATHER])
    assert completion.choices[0].message.content and not completion.choices[0].message.tool_calls


def test_rate_limit_fault_is_an_openai_shaped_429_with_retry_after(sim):
    sim.faults({"kind": "rate_limit", "retry_after": 7, "endpoint": "chat_completions"})
    with pytest.raises(openai.RateLimitError) as error:
        client(sim).chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES)
    assert error.value.response.headers["retry-after"] == "7"
    body = error.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["type"] == "rate_limit_error"


def test_faults_are_selected_by_endpoint(sim):
    sim.faults({"kind": "overloaded"})  # endpoint defaults to messages: chat is untouched
    assert client(sim).chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES).choices
    sim.faults({"kind": "overloaded", "endpoint": "chat_completions"})
    with pytest.raises(openai.InternalServerError) as error:
        client(sim).chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES)
    assert error.value.status_code == 529 and error.value.body["type"] == "overloaded_error"


def test_error_after_content_is_an_error_chunk_the_sdk_raises(sim):
    sim.faults({"kind": "error_after_content", "after_events": 2, "endpoint": "*"})
    stream = client(sim).chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 3  # the opening chunk and two content chunks


def test_malformed_fault_is_a_chunk_that_is_not_json(sim):
    sim.faults({"kind": "malformed", "endpoint": "chat_completions"})
    frames = raw_sse(sim, {"model": "m", "messages": MESSAGES, "stream": True})
    assert b"data: [DONE]" not in frames
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[-1][len(b"data: "):])


def test_bad_requests_are_openai_shaped_400s(sim):
    with pytest.raises(openai.BadRequestError) as error:
        client(sim).chat.completions.create(model="claude-haiku-4-5", messages=[])
    assert error.value.body["param"] == "messages"
    req = urllib.request.Request(sim.url + "/v1/chat/completions", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(req, timeout=10)
    assert raw.value.code == 400 and "error" in json.loads(raw.value.read())
