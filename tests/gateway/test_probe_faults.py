"""Fault-probe findings on the request path (issue 13): each test drives the real router with the real SDK
(or raw HTTP where the SDK cannot express the case) against the simulator's new fault kinds."""

from __future__ import annotations

import json
import logging
import time

import anthropic

from tests.conftest import sdk_client

OPUS, SONNET, HAIKU = "claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Prove that there are infinitely many primes."}]


def create(router, **extra):
    return sdk_client(router).messages.with_raw_response.create(model="opus", max_tokens=64, messages=MESSAGES, **extra)


def stream_events(router, **extra):
    with sdk_client(router).messages.with_streaming_response.create(
        model="opus", max_tokens=64, messages=MESSAGES, stream=True, **extra
    ) as raw:
        return raw.headers, list(raw.parse())


# --- defect 18: a 200 JSON answer with a malformed body is a failed attempt -------------------------


def test_malformed_200_json_falls_back(router, sim):
    sim.faults({"kind": "malformed_json", "model": OPUS})
    raw = create(router)
    message = raw.parse()  # the SDK would raise JSONDecodeError on the relayed half body
    assert message.model == SONNET and message.content[0].text
    assert raw.headers["x-router-attempts"] == f"{OPUS}:malformed,{SONNET}:200"


def test_malformed_200_json_everywhere_is_a_502_envelope(router, sim):
    sim.faults({"kind": "malformed_json"})
    try:
        create(router)
    except anthropic.APIStatusError as exc:
        assert exc.status_code == 502 and exc.body["error"]["type"] == "api_error"
        assert exc.response.headers["x-should-retry"] == "false"
    else:
        raise AssertionError("expected a 502")


# --- defect 14: a comment frame or unknown event before content does not commit the stream -----------


def test_comment_and_unknown_event_before_an_error_still_fall_back(router, sim):
    sim.faults({"kind": "error_before_content", "model": OPUS, "comments": True})
    headers, events = stream_events(router)
    assert headers["x-router-attempts"] == f"{OPUS}:error_event:overloaded_error,{SONNET}:200"
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop" and "error" not in types
    assert events[0].message.model == SONNET


def test_comment_frames_between_deltas_are_relayed_harmlessly(router, sim):
    sim.faults({"kind": "comment_frames", "model": OPUS})
    headers, events = stream_events(router)
    assert headers["x-router-attempts"] == f"{OPUS}:200"
    assert [e.type for e in events][-1] == "message_stop"


# --- defect 7: a stream whose first answer event is message_stop is complete -------------------------


def test_stream_with_only_message_stop_is_complete_not_cut(router, sim, caplog):
    sim.faults({"kind": "empty_stream", "model": OPUS})
    with caplog.at_level(logging.INFO, logger="router.access"):
        headers, events = stream_events(router)
        line = wait_for_access_line(caplog)
    assert [e.type for e in events] == ["message_start", "message_stop"]  # the SDK drops ping
    assert headers["x-router-attempts"] == f"{OPUS}:200"
    assert line["outcome"] == "ok" and line["end"] == "complete"


# --- defect 15: a linear SSE framer with a frame cap -------------------------------------------------


def test_huge_frame_is_relayed_whole(router, sim):
    sim.faults({"kind": "oversize", "model": OPUS, "frame_bytes": 4 << 20})
    started = time.monotonic()
    headers, events = stream_events(router)
    assert time.monotonic() - started < 5
    texts = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert max(len(t) for t in texts) == 4 << 20 and events[-1].type == "message_stop"


def test_frame_over_the_cap_before_content_falls_back(router, sim):
    sim.faults({"kind": "oversize", "model": OPUS, "frame_bytes": 17 << 20})
    headers, events = stream_events(router)
    assert headers["x-router-attempts"] == f"{OPUS}:oversize,{SONNET}:200"
    assert events[-1].type == "message_stop"


def wait_for_access_line(caplog, count: int = 1, timeout: float = 5.0) -> dict:
    """The access log line of a request: streams log theirs when the relay ends, just after the client
    has read the last byte, so it may arrive a moment after the SDK returns."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]
        if len(lines) >= count:
            return lines[count - 1]
        time.sleep(0.01)
    raise AssertionError("no access log line")


# --- defect 7: headers in both directions, and a 429 hidden behind a fallback's 400 -----------------


def raw_request(router, body: dict, headers: list[tuple[str, str]], path: str = "/v1/messages"):
    import http.client

    from tests.conftest import CLIENT_KEY

    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    data = json.dumps(body).encode()
    conn.putrequest("POST", path)
    for name, value in [("x-api-key", CLIENT_KEY), ("content-type", "application/json"), ("content-length", str(len(data))), *headers]:
        conn.putheader(name, value)
    conn.endheaders(data)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp, payload


def test_repeated_request_headers_reach_the_upstream_joined_in_order(router, sim):
    body = {"model": "opus", "max_tokens": 8, "messages": MESSAGES}
    resp, _ = raw_request(router, body, [("anthropic-beta", "beta-a-2025"), ("anthropic-beta", "beta-b-2026")])
    assert resp.status == 200
    (entry,) = sim.requests()
    assert [v for k, v in entry["raw_headers"] if k == "anthropic-beta"] == ["beta-a-2025, beta-b-2026"]


def test_upstream_response_headers_are_allowlisted(router, sim):
    sim.faults({"kind": "extra_headers"})
    raw = create(router)
    assert raw.headers["request-id"].startswith("req_sim_")
    assert raw.headers["anthropic-ratelimit-requests-limit"] and raw.headers["x-should-retry"] == "true"
    for private in ("set-cookie", "anthropic-organization-id", "x-sim-internal"):
        assert private not in raw.headers
    sim.faults({"kind": "extra_headers"})
    headers, _ = stream_events(router)
    assert "set-cookie" not in headers and "anthropic-organization-id" not in headers
    assert headers["content-type"].startswith("text/event-stream")


def test_a_rate_limit_is_not_hidden_behind_a_fallbacks_400(router, sim):
    sim.faults(
        {"kind": "rate_limit", "model": OPUS, "retry_after": 30},
        {"kind": "invalid_request", "model": SONNET},
    )
    try:
        create(router)
    except anthropic.RateLimitError as exc:
        headers = exc.response.headers
        assert headers["retry-after"] == "30" and headers["x-should-retry"] == "true"
        assert headers["x-router-attempts"] == f"{OPUS}:429,{SONNET}:400"
        assert headers["x-router-fallback-error"] == f"{SONNET} 400 invalid_request_error"
        assert exc.body["error"]["type"] == "rate_limit_error"
    else:
        raise AssertionError("expected the 429")


def test_a_400_from_the_first_target_is_returned_as_it_is(router, sim):
    sim.faults({"kind": "invalid_request", "model": OPUS})
    try:
        create(router)
    except anthropic.BadRequestError as exc:
        assert exc.response.headers["x-router-attempts"] == f"{OPUS}:400"
        assert "x-router-fallback-error" not in exc.response.headers
    else:
        raise AssertionError("expected the 400")


# --- defect 9: a stalled non-streaming attempt falls back; a long legitimate one is not cut ----------


def test_stalled_json_attempt_falls_back_within_its_own_limit(make_router, sim):
    # Limit: first_content_timeout + max_tokens / 20 tok/s = 0.5 + 0.4 s; the request deadline is 10 s.
    router = make_router(first_content_timeout=0.5, request_timeout=10)
    sim.faults({"kind": "stall", "model": OPUS, "stall_s": 30})
    started = time.monotonic()
    raw = sdk_client(router).messages.with_raw_response.create(model="opus", max_tokens=8, messages=MESSAGES)
    assert time.monotonic() - started < 3
    assert raw.headers["x-router-attempts"] == f"{OPUS}:timeout,{SONNET}:200"
    from tests.gateway.test_stream_accounting import metric

    assert metric(router, 'router_fallbacks_total{from_tier="opus",reason="timeout",to_tier="sonnet"}') == 1


def test_long_json_generation_within_the_limit_is_not_cut(make_router, sim):
    router = make_router(first_content_timeout=0.5, request_timeout=10)
    # 100 tokens at 80 tok/s: 1.25 s, above first_content_timeout, below 0.5 + 100 / 20 = 5.5 s.
    sim.profiles({"*": {"ttft_ms": 0, "tokens_per_s": 80, "output_tokens": 100}})
    raw = sdk_client(router).messages.with_raw_response.create(model="opus", max_tokens=100, messages=MESSAGES)
    assert raw.headers["x-router-attempts"] == f"{OPUS}:200" and raw.parse().usage.output_tokens == 100
