"""The wire variations and failures the fault probe needed (issue 13): prompt-cache usage, a stream with no
content, SSE comment frames, trickled deltas, one huge frame, a malformed 200 JSON body, a stall before the
response head, response headers a router must not relay, repeated request headers."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

import anthropic
import pytest

from tests.sim.test_sim import ask, client, names, raw_sse, running_sim, upstream  # noqa: F401  (fixtures)


def raw_post(upstream: Any, body: dict[str, Any], headers: list[tuple[str, str]] | None = None, timeout: float = 5):
    conn = http.client.HTTPConnection("127.0.0.1", upstream.server.port, timeout=timeout)
    conn.putrequest("POST", "/v1/messages")
    data = json.dumps(body).encode()
    for name, value in [("content-type", "application/json"), ("content-length", str(len(data))), *(headers or [])]:
        conn.putheader(name, value)
    conn.endheaders(data)
    resp = conn.getresponse()
    return resp, resp.read(), conn


CACHE = {"kind": "prompt_cache", "cache_read_tokens": 90_000, "cache_creation_tokens": 1_200}


def test_prompt_cache_usage_in_json_and_in_both_stream_events(upstream, client) -> None:
    upstream.faults(CACHE)
    message = client.messages.create(**ask())
    assert message.usage.cache_read_input_tokens == 90_000 and message.usage.cache_creation_input_tokens == 1_200
    frames, ending = raw_sse(upstream, ask())
    start = json.loads(dict(frames)["message_start"])["message"]["usage"]
    delta = json.loads(dict(frames)["message_delta"])["usage"]
    assert ending == "eof"
    assert start["cache_read_input_tokens"] == delta["cache_read_input_tokens"] == 90_000
    assert start["cache_creation_input_tokens"] == delta["cache_creation_input_tokens"] == 1_200
    assert delta["output_tokens"] == message.usage.output_tokens and delta["input_tokens"] == start["input_tokens"]


def test_without_prompt_cache_message_delta_has_only_output_tokens(upstream) -> None:
    frames, _ = raw_sse(upstream, ask())
    assert set(json.loads(dict(frames)["message_delta"])["usage"]) == {"output_tokens"}


def test_empty_stream_is_message_stop_without_content(upstream, client) -> None:
    upstream.faults({"kind": "empty_stream"})
    frames, ending = raw_sse(upstream, ask())
    assert names(frames) == ["message_start", "ping", "message_stop"] and ending == "eof"
    with pytest.raises(anthropic.InternalServerError):  # like every stream-only kind, 529 without a stream
        client.messages.create(**ask())


def read_raw_stream(upstream: Any, body: dict[str, Any]) -> bytes:
    resp, data, conn = raw_post(upstream, {**body, "stream": True})
    conn.close()
    assert resp.status == 200
    return data


def test_comment_frames_before_content_and_between_deltas(upstream) -> None:
    upstream.faults({"kind": "comment_frames"})
    data = read_raw_stream(upstream, ask())
    frames = data.split(b"\n\n")
    first_delta = next(i for i, f in enumerate(frames) if f.startswith(b"event: content_block_delta"))
    assert frames[first_delta - 2].startswith(b": ")  # before content_block_start, after ping
    assert sum(f.startswith(b": ") for f in frames) > 2
    # Comments are invisible to an SSE client: the SDK still reads a whole answer.
    assert b"event: message_stop" in data


def test_comments_flag_precedes_another_fault(upstream) -> None:
    upstream.faults({"kind": "error_before_content", "comments": True})
    data = read_raw_stream(upstream, ask())
    assert data.index(b": sim") < data.index(b"event: error") and b"event: thread_hint" in data


def test_trickle_writes_frames_in_small_pieces(upstream, client) -> None:
    upstream.faults({"kind": "trickle"})
    conn = http.client.HTTPConnection("127.0.0.1", upstream.server.port, timeout=5)
    conn.request("POST", "/v1/messages", json.dumps(ask(stream=True)), {"content-type": "application/json"})
    resp = conn.getresponse()
    sizes = []
    while chunk := resp.read1(65536):
        sizes.append(len(chunk))
    conn.close()
    assert len(sizes) > 50  # many small reads, not one per frame
    upstream.faults({"kind": "trickle"})
    with client.messages.stream(**ask()) as stream:
        assert stream.get_final_message().content[0].text


def test_oversize_stream_sends_one_huge_frame(upstream) -> None:
    upstream.faults({"kind": "oversize", "frame_bytes": 1 << 20})
    data = read_raw_stream(upstream, ask())
    frames = data.split(b"\n\n")
    assert max(len(f) for f in frames) > 1 << 20
    assert frames[-2].startswith(b"event: message_stop")


def test_oversize_json_answer(upstream, client) -> None:
    upstream.faults({"kind": "oversize", "frame_bytes": 2 << 20})
    assert len(client.messages.create(**ask()).content[0].text) == 2 << 20


def test_malformed_json_is_a_200_with_a_truncated_body(upstream, client) -> None:
    upstream.faults({"kind": "malformed_json"})
    resp, data, conn = raw_post(upstream, ask())
    conn.close()
    assert resp.status == 200 and resp.getheader("content-type") == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(data)
    upstream.faults({"kind": "malformed_json"})
    conn = http.client.HTTPConnection("127.0.0.1", upstream.server.port, timeout=5)
    conn.request("POST", "/v1/messages", json.dumps(ask(stream=True)), {"content-type": "application/json"})
    assert conn.getresponse().status == 529  # JSON-only: a stream request is overloaded instead
    conn.close()


def test_stall_before_the_response_head_of_a_json_answer(upstream) -> None:
    upstream.faults({"kind": "stall", "stall_s": 0.4})
    conn = http.client.HTTPConnection("127.0.0.1", upstream.server.port, timeout=0.2)
    conn.request("POST", "/v1/messages", json.dumps(ask()), {"content-type": "application/json"})
    with pytest.raises((TimeoutError, socket.timeout)):
        conn.getresponse()  # not even the status line arrives during the stall
    conn.close()
    upstream.faults({"kind": "stall", "stall_s": 0.3})
    started = time.monotonic()
    resp, data, conn = raw_post(upstream, ask())
    conn.close()
    assert resp.status == 200 and json.loads(data)["content"] and time.monotonic() - started >= 0.3


def test_extra_headers_repeat_and_include_private_ones(upstream) -> None:
    upstream.faults({"kind": "extra_headers"})
    resp, _, conn = raw_post(upstream, ask())
    conn.close()
    cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
    assert len(cookies) == 2 and resp.getheader("anthropic-organization-id") == "org-sim-0001"
    assert resp.getheader("request-id").startswith("req_sim_")


def test_request_log_keeps_repeated_headers(upstream) -> None:
    resp, _, conn = raw_post(upstream, ask(), [("anthropic-beta", "a-2025"), ("anthropic-beta", "b-2026")])
    conn.close()
    assert resp.status == 200
    (entry,) = upstream.requests()
    assert [v for k, v in entry["raw_headers"] if k == "anthropic-beta"] == ["a-2025", "b-2026"]
    assert entry["headers"]["anthropic-beta"] == "a-2025, b-2026"


def test_invalid_request_is_a_400_envelope(upstream, client) -> None:
    upstream.faults({"kind": "invalid_request"})
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(**ask())
    assert info.value.body["error"]["type"] == "invalid_request_error"
