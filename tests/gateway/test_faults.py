"""One conformance test per injected fault: what the client (the real anthropic SDK) sees.

Before the commit point a failure is invisible: the next target answers and ``x-router-attempts`` shows
both. After it, the stream ends with an ``error`` event the SDK raises on. When every target fails, the
client gets the matching SDK exception with ``retry-after`` and ``x-should-retry`` set deliberately.
"""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from tests.conftest import post, sdk_client

OPUS, SONNET, HAIKU = "claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Prove that there are infinitely many primes."}]


def create(router):
    return sdk_client(router).messages.with_raw_response.create(model="opus", max_tokens=64, messages=MESSAGES)


def stream_text(router):
    client = sdk_client(router)
    with client.messages.with_streaming_response.create(
        model="opus", max_tokens=64, messages=MESSAGES, stream=True
    ) as raw:
        headers = raw.headers
        events = list(raw.parse())
    return headers, events


@pytest.mark.parametrize(
    "fault, label",
    [
        ({"kind": "rate_limit", "retry_after": 30}, "429"),
        ({"kind": "overloaded"}, "529"),
        ({"kind": "server_error"}, "500"),
        ({"kind": "server_error", "status": 503}, "503"),
        ({"kind": "connect_refused"}, "connect"),
        ({"kind": "cut"}, "cut"),
    ],
)
def test_json_first_target_fails_next_answers(router, sim, fault, label):
    sim.faults({**fault, "model": OPUS})
    raw = create(router)
    message = raw.parse()
    assert message.model == SONNET and message.content[0].text
    assert raw.headers["x-router-attempts"] == f"{OPUS}:{label},{SONNET}:200"
    assert raw.headers["x-router-model"] == SONNET and raw.headers["x-router-tier"] == "sonnet"
    assert sim.models_seen() == [OPUS, SONNET]


@pytest.mark.parametrize(
    "fault, label",
    [
        ({"kind": "rate_limit", "retry_after": 30}, "429"),
        ({"kind": "overloaded"}, "529"),
        ({"kind": "server_error"}, "500"),
        ({"kind": "connect_refused"}, "connect"),
        ({"kind": "error_before_content"}, "error_event:overloaded_error"),
        ({"kind": "cut", "after_events": 0}, "cut"),
        ({"kind": "malformed"}, "malformed"),
        ({"kind": "stall", "stall_s": 30}, "stall"),
    ],
)
def test_stream_failure_before_content_falls_back_invisibly(make_router, sim, fault, label):
    router = make_router(first_content_timeout=0.5)
    sim.faults({**fault, "model": OPUS})
    headers, events = stream_text(router)
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert headers["request-id"].startswith("req_sim_")
    assert types.count("message_start") == 1, "the failed attempt's message_start must not leak"
    assert events[0].message.model == SONNET
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text
    assert headers["x-router-attempts"] == f"{OPUS}:{label},{SONNET}:200"


@pytest.mark.parametrize(
    "fault, error_type",
    [
        ({"kind": "error_after_content"}, "overloaded_error"),
        ({"kind": "cut", "after_events": 2}, "api_error"),
        ({"kind": "malformed_after_content"}, "api_error"),
        ({"kind": "stall_after_content", "stall_s": 30}, "timeout_error"),
    ],
)
def test_stream_failure_after_content_ends_with_error_event(make_router, sim, fault, error_type):
    router = make_router(stream_idle_timeout=0.5)
    sim.faults({**fault, "model": OPUS})
    client = sdk_client(router)
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="opus", max_tokens=64, messages=MESSAGES) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert received, "content before the failure reached the client"
    assert info.value.body["error"]["type"] == error_type
    assert sim.models_seen() == [OPUS], "no fallback after the commit point"


def test_all_targets_rate_limited_gives_rate_limit_error_with_retry_after(router, sim):
    sim.faults({"kind": "rate_limit", "retry_after": 40}, )
    with pytest.raises(anthropic.RateLimitError) as info:
        create(router)
    headers = info.value.response.headers
    assert headers["retry-after"] == "40"
    assert headers["x-should-retry"] == "true"
    assert headers["x-router-attempts"] == f"{OPUS}:429,{SONNET}:429,{HAIKU}:429"
    assert info.value.body["error"]["type"] == "rate_limit_error"


def test_all_targets_error_event_before_content_gives_overloaded_error(router, sim):
    sim.faults({"kind": "error_before_content"})
    with pytest.raises(anthropic.OverloadedError) as info:
        sdk_client(router).messages.stream(model="opus", max_tokens=8, messages=MESSAGES).__enter__()
    assert info.value.body["error"]["type"] == "overloaded_error"
    assert info.value.response.headers["request-id"].startswith("req_sim_")
    assert info.value.response.headers["content-type"] == "application/json"
    assert info.value.response.headers["x-router-attempts"].count("error_event:overloaded_error") == 3


def test_all_targets_overloaded_gives_overloaded_error(router, sim):
    sim.faults({"kind": "overloaded"})
    with pytest.raises(anthropic.OverloadedError) as info:
        sdk_client(router).messages.stream(model="opus", max_tokens=8, messages=MESSAGES).__enter__()
    assert info.value.status_code == 529
    assert info.value.response.headers["x-should-retry"] == "false"


def test_all_targets_server_error_says_do_not_retry(router, sim):
    sim.faults({"kind": "server_error"})
    with pytest.raises(anthropic.InternalServerError) as info:
        create(router)
    assert info.value.status_code == 500
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in info.value.response.headers


def test_all_targets_unreachable_gives_502_in_envelope(router, sim):
    sim.faults({"kind": "connect_refused"})
    with pytest.raises(anthropic.InternalServerError) as info:
        create(router)
    assert info.value.status_code == 502
    assert info.value.body["error"]["type"] == "api_error"
    assert "every target failed" in info.value.body["error"]["message"]
    assert info.value.response.headers["request-id"].startswith("req_router_")


def test_cooldown_skips_a_rate_limited_model_for_later_requests(router, sim):
    sim.faults({"kind": "rate_limit", "model": OPUS, "retry_after": 30, "count": 1})
    first = create(router)
    assert first.headers["x-router-attempts"] == f"{OPUS}:429,{SONNET}:200"
    second = create(router)
    assert second.headers["x-router-attempts"] == f"{SONNET}:200"
    assert sim.models_seen() == [OPUS, SONNET, SONNET]


def test_all_cooling_answers_429_with_retry_after_without_calling_upstream(router, sim):
    sim.faults(*({"kind": "rate_limit", "model": m, "retry_after": 20, "count": 1} for m in (OPUS, SONNET, HAIKU)))
    client = sdk_client(router)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="opus", max_tokens=8, messages=MESSAGES)  # every tier answers 429
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="opus", max_tokens=8, messages=MESSAGES)
    headers = info.value.response.headers
    assert 19 <= int(headers["retry-after"]) <= 20 and headers["x-should-retry"] == "true"
    assert "cooling down" in info.value.body["error"]["message"]
    assert sim.models_seen() == [OPUS, SONNET, HAIKU]


def test_a_named_cooling_model_with_no_alternative_is_still_tried(router, sim):
    # Issue 13, defect 13: this used to answer 429 "cooling down" without asking the upstream, for as long
    # as the retry-after said -- even though the request named exactly that model.
    sim.faults({"kind": "rate_limit", "model": "claude-future-1", "retry_after": 20, "count": 1})
    client = sdk_client(router)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="claude-future-1", max_tokens=8, messages=MESSAGES)
    raw = client.messages.with_raw_response.create(model="claude-future-1", max_tokens=8, messages=MESSAGES)
    assert raw.parse().model == "claude-future-1" and raw.headers["x-router-attempts"] == "claude-future-1:200"
    assert sim.models_seen() == ["claude-future-1", "claude-future-1"]


def test_short_retry_after_on_last_target_is_waited_out(router, sim):
    sim.faults({"kind": "rate_limit", "model": "claude-future-1", "retry_after": 1, "count": 1})
    started = time.monotonic()
    raw = sdk_client(router).messages.with_raw_response.create(model="claude-future-1", max_tokens=8, messages=MESSAGES)
    elapsed = time.monotonic() - started
    assert raw.parse().model == "claude-future-1"
    assert raw.headers["x-router-attempts"] == "claude-future-1:429,claude-future-1:200"
    assert 0.9 <= elapsed < 5


def test_retry_after_longer_than_policy_allows_is_not_waited(router, sim):
    sim.faults({"kind": "rate_limit", "model": "claude-future-1", "retry_after": 6, "count": 1})
    started = time.monotonic()
    with pytest.raises(anthropic.RateLimitError) as info:
        sdk_client(router).messages.create(model="claude-future-1", max_tokens=8, messages=MESSAGES)
    assert time.monotonic() - started < 2
    assert info.value.response.headers["retry-after"] == "6"


def test_non_retryable_400_is_relayed_without_fallback(router, sim):
    # max_tokens is not a field the router reads, so the upstream is the one to reject its absence.
    body = json.dumps({"model": "opus", "messages": MESSAGES}).encode()
    status, headers, payload = post(router.url + "/v1/messages", body, {"x-api-key": "k"})
    assert status == 400
    assert json.loads(payload)["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in json.loads(payload)["error"]["message"]
    assert headers["x-router-attempts"] == f"{OPUS}:400"
    assert headers["request-id"].startswith("req_sim_")
    assert len(sim.requests()) == 1


def raw_stream(router, model="opus"):
    import httpx2

    body = {"model": model, "max_tokens": 64, "stream": True, "messages": MESSAGES}
    with httpx2.Client(timeout=20) as client:
        with client.stream("POST", router.url + "/v1/messages", json=body, headers={"x-api-key": "k"}) as response:
            return response.status_code, b"".join(response.iter_raw())


def event_names(data: bytes) -> list[str]:
    return [line[7:].decode() for line in data.split(b"\n") if line.startswith(b"event: ")]


def test_unknown_event_types_pass_through_untouched(router, sim):
    sim.faults({"kind": "novel_events", "model": OPUS})
    status, data = raw_stream(router)
    names = event_names(data)
    assert status == 200
    assert names[:4] == ["message_start", "ping", "thread_hint", "content_block_start"]
    assert "content_block_annotation" in names and names[-1] == "message_stop"
    assert b'"note":"an event type from the future"' in data or b'"note": "an event type from the future"' in data
    with sdk_client(router).messages.stream(model="opus", max_tokens=64, messages=MESSAGES) as stream:
        assert stream.get_final_message().content[0].text


def test_frames_split_across_reads_are_relayed_whole_and_in_order(router, sim):
    sim.faults({"kind": "fragmented", "model": OPUS})
    status, fragmented = raw_stream(router)
    sim.faults()
    _, whole = raw_stream(router)
    assert status == 200
    assert event_names(fragmented) == event_names(whole)
    assert event_names(fragmented)[-1] == "message_stop"
    assert fragmented.count(b"\n\n") == whole.count(b"\n\n"), "no frame lost, merged or added"


def test_client_leaving_mid_stream_closes_the_upstream_stream(router, sim, caplog):
    import httpx2

    caplog.set_level("INFO", logger="router.access")
    sim.profiles({"*": {"ttft_ms": 0, "tokens_per_s": 20, "output_tokens": 400}})  # ~20 s if read to the end
    body = {"model": "opus", "max_tokens": 400, "stream": True, "messages": MESSAGES}
    started = time.monotonic()
    with httpx2.Client(timeout=20) as client:
        with client.stream("POST", router.url + "/v1/messages", json=body, headers={"x-api-key": "k"}) as response:
            for line in response.iter_lines():
                if line.startswith("event: content_block_delta"):
                    break
    deadline = time.monotonic() + 5
    ends: list[str] = []
    while time.monotonic() < deadline and not ends:
        ends = [json.loads(r.getMessage()).get("end") for r in caplog.records if r.name == "router.access"]
        time.sleep(0.05)
    assert ends == ["client_gone"]
    assert time.monotonic() - started < 8, "the relay stopped when the client left, not when the answer ended"
