"""The OpenAI surface through the real OpenAI SDK, over HTTP, against the router on the simulator:
``chat.completions.create`` (JSON and stream, with tools) classified, planned, failed over and accounted like
``/v1/messages``; errors in the OpenAI shape; ``models.list()`` for both SDKs."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import anthropic
import openai
import pytest

from router.policy.keys import hash_key
from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, post, sdk_client

OPUS, SONNET, HAIKU = "claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"
CHAT = "/v1/chat/completions"
MESSAGES = [
    {"role": "system", "content": "You are a careful mathematician."},
    {"role": "user", "content": "Prove that there are infinitely many primes."},
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TENANTS = f'tenants:\n  acme:\n    keys: ["{hash_key(CLIENT_KEY)}"]\n'


def oai(router, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url + "/v1", api_key=key, max_retries=0, timeout=20)


def chat_requests(sim) -> list[dict]:
    """What the simulator received on its chat endpoint (the router's own Haiku triage calls go to
    ``/v1/messages``, so none are here)."""
    return [r for r in sim._call("GET", "/_sim/requests")["requests"] if r["path"] == CHAT]


def chat_models(sim) -> list[str]:
    return [r["model"] for r in chat_requests(sim)]


def admin_metrics(router) -> str:
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def access_lines(caplog, count: int, timeout: float = 5.0) -> list[dict]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]
        if len(lines) >= count:
            return lines
        time.sleep(0.01)
    raise AssertionError(f"expected {count} access lines")


# --- JSON and stream, models auto / tier / concrete id -------------------------------------------------


@pytest.mark.parametrize("model, answered", [("opus", OPUS), ("haiku", HAIKU), ("claude-sonnet-4-6", SONNET)])
def test_json_completion_goes_to_the_planned_model(router, sim, model, answered):
    raw = oai(router).chat.completions.with_raw_response.create(model=model, messages=MESSAGES, max_tokens=64)
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.model == answered
    assert completion.choices[0].message.content
    assert raw.headers["x-router-model"] == answered and raw.headers["x-router-attempts"] == f"{answered}:200"
    (seen,) = chat_requests(sim)
    assert seen["body"]["model"] == answered, "the model field is rewritten, the body otherwise as sent"
    assert seen["body"]["messages"] == MESSAGES and seen["body"]["max_tokens"] == 64
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}", "the OpenAI SDK's own way, with the router's key"
    assert CLIENT_KEY not in json.dumps(seen["headers"]), "the client's key never goes upstream"


def test_auto_is_classified_from_the_openai_body(router, sim):
    raw = oai(router).chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    completion = raw.parse()
    classification = raw.headers["x-router-classification"]
    assert "category=" in classification and "complexity=" in classification
    assert completion.model == raw.headers["x-router-model"] and completion.model in (OPUS, SONNET, HAIKU)
    assert chat_models(sim) == [completion.model]


def test_auto_reads_the_conversation_like_the_messages_api(router, sim):
    """The same conversation in both formats gets the same classification (the Messages-shaped view)."""
    anthropic_raw = sdk_client(router).messages.with_raw_response.create(
        model="auto", max_tokens=64, system=MESSAGES[0]["content"], messages=[MESSAGES[1]]
    )
    openai_raw = oai(router).chat.completions.with_raw_response.create(model="auto", messages=MESSAGES, max_tokens=64)
    assert openai_raw.headers["x-router-classification"] == anthropic_raw.headers["x-router-classification"]
    assert openai_raw.headers["x-router-model"] == anthropic_raw.headers["x-router-model"]


def test_stream_relays_chunks_and_strips_the_usage_chunk_the_router_asked_for(router, sim):
    client = oai(router)
    text = client.chat.completions.create(model="sonnet", messages=MESSAGES).choices[0].message.content
    with client.chat.completions.with_streaming_response.create(model="sonnet", messages=MESSAGES, stream=True) as raw:
        assert raw.headers["x-router-model"] == SONNET
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert all(c.choices for c in chunks), "no usage chunk: the client did not ask for one"
    assert chunks[-1].choices[0].finish_reason == "stop"
    sent = chat_requests(sim)[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}, "the router asks for usage to account the stream"


def test_stream_keeps_the_usage_chunk_the_client_asked_for(router, sim):
    stream = oai(router).chat.completions.create(
        model="haiku", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_tools_json_and_stream(router, sim):
    client = oai(router)
    completion = client.chat.completions.create(model="opus", messages=MESSAGES, tools=[WEATHER], tool_choice="required")
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
    stream = client.chat.completions.create(
        model="opus", messages=MESSAGES, tools=[WEATHER], tool_choice="required", stream=True
    )
    calls = [c.choices[0].delta.tool_calls[0] for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].function.name == "get_weather"
    assert json.loads("".join(c.function.arguments or "" for c in calls)) == json.loads(call.function.arguments)
    assert chat_requests(sim)[-1]["body"]["tools"] == [WEATHER]


def test_tool_rules_see_the_openai_tools(router, sim):
    """``tools`` in the facts: the Messages-shaped view carries them (explain-free check via the log)."""
    from router.gateway.openai.request import parse_chat

    parsed = parse_chat(json.dumps({"model": "auto", "messages": MESSAGES, "tools": [WEATHER]}).encode())
    assert parsed.view.tools == [{"name": "get_weather", "description": "", "input_schema": WEATHER["function"]["parameters"]}]


# --- fallback before the first chunk, explicit error after it -------------------------------------------


@pytest.mark.parametrize(
    "fault, label",
    [
        ({"kind": "rate_limit", "retry_after": 30}, "429"),
        ({"kind": "overloaded"}, "529"),
        ({"kind": "server_error", "status": 503}, "503"),
        ({"kind": "connect_refused"}, "connect"),
        ({"kind": "malformed_json"}, "malformed"),
        ({"kind": "cut"}, "cut"),
    ],
)
def test_json_falls_back_on_429_and_529(router, sim, fault, label):
    sim.faults({**fault, "model": OPUS, "endpoint": "chat_completions"})
    raw = oai(router).chat.completions.with_raw_response.create(model="opus", messages=MESSAGES)
    assert raw.parse().model == SONNET
    assert raw.headers["x-router-attempts"] == f"{OPUS}:{label},{SONNET}:200"
    assert chat_models(sim) == [OPUS, SONNET]


@pytest.mark.parametrize(
    "fault, label",
    [
        ({"kind": "rate_limit", "retry_after": 30}, "429"),
        ({"kind": "overloaded"}, "529"),
        ({"kind": "error_before_content"}, "error_event:overloaded_error"),
        ({"kind": "cut", "after_events": 0}, "cut"),
        ({"kind": "malformed"}, "malformed"),
    ],
)
def test_stream_falls_back_before_the_first_chunk(router, sim, fault, label):
    sim.faults({**fault, "model": OPUS, "endpoint": "chat_completions"})
    with oai(router).chat.completions.with_streaming_response.create(model="opus", messages=MESSAGES, stream=True) as raw:
        attempts = raw.headers["x-router-attempts"]
        chunks = list(raw.parse())
    assert attempts == f"{OPUS}:{label},{SONNET}:200"
    assert {c.model for c in chunks} == {SONNET}, "nothing of the failed attempt reaches the client"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("kind", ["fragmented", "trickle", "comment_frames"])
def test_streams_split_across_reads_or_with_comments_arrive_whole(router, sim, kind):
    client = oai(router)
    text = client.chat.completions.create(model="haiku", messages=MESSAGES).choices[0].message.content
    sim.faults({"kind": kind, "endpoint": "chat_completions"})
    with client.chat.completions.with_streaming_response.create(model="haiku", messages=MESSAGES, stream=True) as raw:
        assert raw.headers["x-router-attempts"] == f"{HAIKU}:200"
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def test_an_empty_stream_is_complete_not_cut(router, sim, caplog):
    sim.faults({"kind": "empty_stream", "endpoint": "chat_completions"})
    with caplog.at_level(logging.INFO, logger="router.access"):
        chunks = list(oai(router).chat.completions.create(model="haiku", messages=MESSAGES, stream=True))
        (line,) = access_lines(caplog, 1)
    assert [c.choices[0].delta.role for c in chunks] == ["assistant"]
    assert line["outcome"] == "ok" and line["end"] == "complete"


def test_cooldown_after_a_429_skips_the_model(router, sim):
    sim.faults({"kind": "rate_limit", "retry_after": 30, "model": OPUS, "endpoint": "chat_completions", "count": 1})
    client = oai(router)
    client.chat.completions.create(model="opus", messages=MESSAGES)
    raw = client.chat.completions.with_raw_response.create(model="opus", messages=MESSAGES)
    assert raw.headers["x-router-attempts"] == f"{SONNET}:200", "the cooling model is not tried again"


@pytest.mark.parametrize("fault", [{"kind": "error_after_content", "after_events": 2}, {"kind": "cut", "after_events": 2}])
def test_failure_after_the_first_chunk_is_an_explicit_error(router, sim, caplog, fault):
    sim.faults({**fault, "model": OPUS, "endpoint": "chat_completions"})
    seen = []
    with caplog.at_level(logging.INFO, logger="router.access"):
        stream = oai(router).chat.completions.create(model="opus", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as error:
            for chunk in stream:
                seen.append(chunk)
        (line,) = access_lines(caplog, 1)
    assert seen and {c.model for c in seen} == {OPUS}, "committed: no fallback after content"
    assert chat_models(sim) == [OPUS]
    assert error.value.body["type"] in ("overloaded_error", "api_error")
    assert line["outcome"] == "stream_error" and line["api"] == "chat.completions"


def test_every_target_failing_gives_an_openai_shaped_rate_limit(router, sim):
    sim.faults({"kind": "rate_limit", "retry_after": 30, "endpoint": "chat_completions"})
    with pytest.raises(openai.RateLimitError) as error:
        oai(router).chat.completions.create(model="opus", messages=MESSAGES)
    headers = error.value.response.headers
    assert headers["x-should-retry"] == "true" and headers["retry-after"] == "30"
    assert set(error.value.response.json()["error"]) == {"message", "type", "param", "code"}


def test_every_target_cooling_down_is_a_router_429_in_the_openai_shape(router, sim):
    sim.faults({"kind": "overloaded", "endpoint": "chat_completions", "count": 3})
    client = oai(router)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="opus", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="opus", messages=MESSAGES)
    body = error.value.response.json()
    assert "cooling down" in body["error"]["message"] and body["error"]["type"] == "rate_limit_error"
    assert error.value.response.headers["request-id"].startswith("req_router_")


# --- accounting --------------------------------------------------------------------------------------


def test_cost_is_in_metrics_and_the_access_line_for_json_and_stream(router, sim, caplog):
    client = oai(router)
    with caplog.at_level(logging.INFO, logger="router.access"):
        completion = client.chat.completions.create(model="sonnet", messages=MESSAGES)
        json_line = access_lines(caplog, 1)[0]
        list(client.chat.completions.create(model="sonnet", messages=MESSAGES, stream=True))
        stream_line = access_lines(caplog, 2)[1]
    usage = completion.usage
    assert json_line["input_tokens"] == usage.prompt_tokens and json_line["output_tokens"] == usage.completion_tokens
    expected = (usage.prompt_tokens * 3 + usage.completion_tokens * 15) / 1e6  # Sonnet $3 / $15 per million
    assert json_line["usd"] == pytest.approx(expected, abs=1e-6) and json_line["usd"] > 0
    # The stream's body is larger (stream, stream_options), so the sim counts a few more input tokens.
    assert stream_line["output_tokens"] == usage.completion_tokens and stream_line["input_tokens"] > usage.prompt_tokens
    stream_usd = (stream_line["input_tokens"] * 3 + stream_line["output_tokens"] * 15) / 1e6
    assert stream_line["usd"] == pytest.approx(stream_usd, abs=1e-6)
    for line in (json_line, stream_line):
        assert line["api"] == "chat.completions" and line["model"] == SONNET and line["outcome"] == "ok"
        assert "Prove" not in json.dumps(line) and CLIENT_KEY not in json.dumps(line)
    text = admin_metrics(router)
    cost = metric(text, f'router_cost_usd_total{{model="{SONNET}",purpose="serving"}}')
    assert cost == pytest.approx(expected + stream_usd, abs=1e-6)
    assert metric(text, f'router_tokens_total{{model="{SONNET}",type="output"}}') == 2 * usage.completion_tokens


def test_cached_tokens_are_priced_as_cache_reads(router, sim, caplog):
    sim.faults({"kind": "prompt_cache", "cache_read_tokens": 90_000, "input_tokens": 40, "endpoint": "chat_completions"})
    with caplog.at_level(logging.INFO, logger="router.access"):
        completion = oai(router).chat.completions.create(model="sonnet", messages=MESSAGES)
        (line,) = access_lines(caplog, 1)
    assert completion.usage.prompt_tokens == 90_040 and completion.usage.prompt_tokens_details.cached_tokens == 90_000
    assert line["input_tokens"] == 40 and line["cache_read_input_tokens"] == 90_000
    assert line["usd"] == pytest.approx((40 * 3 + 12 * 15 + 90_000 * 0.3) / 1e6, abs=1e-6)


def test_fallbacks_and_decisions_are_counted(router, sim):
    sim.faults({"kind": "overloaded", "model": OPUS, "endpoint": "chat_completions"})
    oai(router).chat.completions.create(model="opus", messages=MESSAGES)
    text = admin_metrics(router)
    assert metric(text, 'router_fallbacks_total{from_tier="opus",reason="overloaded",to_tier="sonnet"}') == 1
    assert any(l.startswith("router_requests_total{") and 'outcome="ok"' in l and 'tier="opus"' in l for l in text.splitlines())


# --- errors in the OpenAI shape ------------------------------------------------------------------------


def _openai_error(status: int, body: bytes, expected_status: int) -> dict:
    assert status == expected_status
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_bad_json_and_missing_messages_are_openai_shaped_400s(router, sim):
    status, headers, body = post(router.url + CHAT, b"{nope", {"content-type": "application/json", "authorization": "Bearer k"})
    error = _openai_error(status, body, 400)
    assert error["type"] == "invalid_request_error" and "not valid JSON" in error["message"]
    assert headers["request-id"].startswith("req_router_")
    status, _, body = post(router.url + CHAT, b'{"model": "auto"}', {"content-type": "application/json", "authorization": "Bearer k"})
    assert _openai_error(status, body, 400)["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as error:
        oai(router).chat.completions.create(model="auto", messages=[])
    assert error.value.body["param"] == "messages"
    status, headers, body = post(router.url + CHAT, b"", method="GET")
    assert _openai_error(status, body, 405)["type"] == "invalid_request_error" and headers["allow"] == "POST"
    assert chat_requests(sim) == []


def test_bad_key_is_an_openai_shaped_401(make_router, sim):
    router = make_router(files={"tenants.yaml": TENANTS})
    with pytest.raises(openai.AuthenticationError) as error:
        oai(router, key="sk-wrong").chat.completions.create(model="auto", messages=MESSAGES)
    assert error.value.body["type"] == "authentication_error" and error.value.body["code"] == "invalid_api_key"
    body = json.dumps({"model": "auto", "messages": MESSAGES}).encode()
    status, _, raw = post(router.url + CHAT, body, {"content-type": "application/json"})  # no key at all
    assert _openai_error(status, raw, 401)["type"] == "authentication_error"
    assert oai(router).chat.completions.create(model="haiku", messages=MESSAGES).choices, "the tenant's key works"
    assert chat_models(sim) == [HAIKU]


def test_spent_budget_is_an_openai_shaped_429(make_router, sim):
    tenants = f'tenants:\n  acme:\n    keys: ["{hash_key(CLIENT_KEY)}"]\n    budget: {{monthly_usd: 0.000001}}\n'
    router = make_router(files={"tenants.yaml": tenants})
    client = oai(router)
    client.chat.completions.create(model="opus", messages=MESSAGES)  # spends past the tiny budget
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="opus", messages=MESSAGES)
    assert error.value.body["code"] == "insufficient_quota"
    assert error.value.response.headers["x-should-retry"] == "false"


# --- models.list() for both SDKs -----------------------------------------------------------------------


def test_models_list_works_for_the_openai_and_the_anthropic_sdk(router):
    listed = [m for m in oai(router).models.list()]
    ids = [m.id for m in listed]
    assert ids[:4] == ["auto", "haiku", "sonnet", "opus"] or {"auto", "haiku", "sonnet", "opus"} <= set(ids)
    assert {OPUS, SONNET, HAIKU} <= set(ids)
    assert all(m.object == "model" and isinstance(m.created, int) and m.owned_by for m in listed)
    anthropic_ids = [m.id for m in sdk_client(router).models.list()]
    assert anthropic_ids == ids
    assert sdk_client(router).models.retrieve("sonnet").id == "sonnet"
    assert oai(router).models.retrieve("sonnet").owned_by == "router"


def test_stalls_before_and_after_the_first_chunk(make_router, sim):
    router = make_router(first_content_timeout=0.5, stream_idle_timeout=0.5)
    sim.faults({"kind": "stall", "stall_s": 30, "model": OPUS, "endpoint": "chat_completions", "count": 1})
    with oai(router).chat.completions.with_streaming_response.create(model="opus", messages=MESSAGES, stream=True) as raw:
        assert raw.headers["x-router-attempts"] == f"{OPUS}:stall,{SONNET}:200"
        assert list(raw.parse())[-1].choices[0].finish_reason == "stop"
    sim.faults({"kind": "stall_after_content", "stall_s": 30, "after_events": 2, "endpoint": "chat_completions"})
    seen = []
    with pytest.raises(openai.APIError, match="stalled") as error:
        for chunk in oai(router).chat.completions.create(model="haiku", messages=MESSAGES, stream=True):
            seen.append(chunk)
    assert seen and error.value.body["type"] == "timeout_error"
