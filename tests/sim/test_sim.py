"""Tests for router.sim: a real sim on an ephemeral loopback port, driven by the anthropic SDK and raw HTTP."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from router.sim.cli import add_sim_arguments, build_config, parse_fault_spec
from router.sim.config import KNOWN_MODELS, FaultRule, LatencyProfile, SimConfig
from router.sim.schema_fill import fill_schema
from router.sim.server import SimServer, start_sim

USER = [{"role": "user", "content": "Explain the routing decision for this prompt."}]
CLASSIFY_TOOL = {
    "name": "classify",
    "description": "Classify the request.",
    "input_schema": {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["code", "math", "chat", "legal"]},
            "complexity": {"type": "integer", "minimum": 1, "maximum": 5},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
            "needs_tools": {"type": "boolean"},
        },
        "required": ["category", "complexity", "confidence"],
    },
}
# Instant profiles keep the suite fast; latency tests install their own via /_sim/profiles.
FAST = SimConfig(profiles={"*": LatencyProfile(ttft_ms=0, tokens_per_s=0, output_tokens=24)})


class RunningSim:
    """A sim served from a background thread with its own event loop, plus sync control helpers."""

    def __init__(self, config: SimConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: SimServer = self._run(start_sim(config))
        self.url = self.server.url

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        self._run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def faults(self, *rules: dict[str, Any]) -> None:
        status, body = self.call("PUT", "/_sim/faults", {"faults": list(rules)})
        assert status == 200, body

    def requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "/_sim/requests")[1]["requests"]


@pytest.fixture(scope="module")
def running_sim() -> Iterator[RunningSim]:
    running = RunningSim(FAST)
    yield running
    running.close()


# Named apart from conftest's session-wide ``sim`` so these tests own their sim's startup config.
@pytest.fixture
def upstream(running_sim: RunningSim) -> RunningSim:
    status, _ = running_sim.call("POST", "/_sim/reset")
    assert status == 200
    return running_sim


@pytest.fixture
def client(upstream: RunningSim) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.url, api_key="test-key", max_retries=0, timeout=5) as c:
        yield c


def raw_sse(upstream: RunningSim, body: dict[str, Any], timeout: float = 0.5) -> tuple[list[tuple[str, str]], str]:
    """POST a streaming body; return the (event, data) frames seen and how the stream ended.

    The ending is "eof" (server finished the response), "timeout" (nothing more arrived) or "reset".
    """
    conn = http.client.HTTPConnection("127.0.0.1", upstream.server.port, timeout=timeout)
    conn.request("POST", "/v1/messages", json.dumps({**body, "stream": True}), {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    frames: list[tuple[str, str]] = []
    event, ending = "", "eof"
    try:
        while True:
            line = resp.readline()
            if not line:
                break
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[len("event: ") :]
            elif text.startswith("data: "):
                frames.append((event, text[len("data: ") :]))
    except (TimeoutError, socket.timeout):
        ending = "timeout"
    except (ConnectionResetError, http.client.IncompleteRead):
        ending = "reset"
    finally:
        conn.close()
    return frames, ending


def names(frames: list[tuple[str, str]]) -> list[str]:
    return [event for event, _ in frames]


def ask(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "max_tokens": 200, "messages": USER, **extra}


# --- successful responses -------------------------------------------------------------------------


def test_non_stream_message_has_anthropic_shape_and_headers(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(**ask())
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-sonnet-4-6"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.content[0].type == "text" and len(message.content[0].text.split()) == 24
    assert message.usage.output_tokens == 24 and message.usage.input_tokens > 1
    assert message.usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_sim_")
    for family in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert int(raw.headers[f"anthropic-ratelimit-{family}-limit"]) > 0
        assert raw.headers[f"anthropic-ratelimit-{family}-reset"].endswith("Z")


def test_max_tokens_caps_answer(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**ask(max_tokens=5))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5 and len(message.content[0].text.split()) == 5


def test_same_request_same_text_and_stream_matches(client: anthropic.Anthropic) -> None:
    first = client.messages.create(**ask())
    second = client.messages.create(**ask())
    other = client.messages.create(**ask(messages=[{"role": "user", "content": "something else entirely"}]))
    assert first.content[0].text == second.content[0].text != other.content[0].text
    with client.messages.stream(**ask()) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == first.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 24


def test_stream_event_sequence(upstream: RunningSim) -> None:
    frames, ending = raw_sse(upstream, ask())
    events = names(frames)
    assert ending == "eof"
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [json.loads(data) for event, data in frames if event == "content_block_delta"]
    assert len(deltas) == len(events) - 6 and len(deltas) > 1
    assert all(d["delta"]["type"] == "text_delta" for d in deltas)
    start = json.loads(frames[0][1])["message"]
    assert start["content"] == [] and start["usage"]["output_tokens"] == 1
    delta = json.loads(frames[-2][1])
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": 24}


def test_count_tokens_and_models(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="claude-haiku-4-5", messages=USER)
    created = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
    assert counted.input_tokens > 1 and created.usage.input_tokens >= counted.input_tokens
    page = client.models.list()
    assert [m.id for m in page.data] == list(KNOWN_MODELS)
    assert page.data[0].display_name == "Claude Haiku 4.5" and page.has_more is False
    assert page.first_id == KNOWN_MODELS[0] and page.last_id == KNOWN_MODELS[-1]


def test_forced_tool_use_fills_schema(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**ask(tools=[CLASSIFY_TOOL], tool_choice={"type": "tool", "name": "classify"}))
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "classify" and block.id.startswith("toolu_")
    assert block.input["category"] in ("code", "math", "chat", "legal")
    assert isinstance(block.input["complexity"], int) and 1 <= block.input["complexity"] <= 5
    assert 0 <= block.input["confidence"] <= 1
    assert block.input["scores"] and all(isinstance(v, float) for v in block.input["scores"].values())
    assert isinstance(block.input["needs_tools"], bool)
    with client.messages.stream(**ask(tools=[CLASSIFY_TOOL], tool_choice={"type": "any"})) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].type == "tool_use" and streamed.content[0].input == block.input


def test_tool_enum_choice_depends_on_conversation(client: anthropic.Anthropic) -> None:
    chosen = set()
    for n in range(12):
        message = client.messages.create(
            **ask(
                messages=[{"role": "user", "content": f"question number {n}"}],
                tools=[CLASSIFY_TOOL],
                tool_choice={"type": "tool", "name": "classify"},
            )
        )
        chosen.add(message.content[0].input["category"])
    assert len(chosen) > 1


def test_fill_schema_subset() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 10, "maximum": 12},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2, "maxItems": 2},
            "nested": {"type": "object", "properties": {"ok": {"type": ["boolean", "null"]}}},
            "fixed": {"const": "x"},
            "label": {"type": "string", "maxLength": 4},
        },
    }
    value = fill_schema(schema, "text")
    assert 10 <= value["n"] <= 12 and len(value["tags"]) == 2 and set(value["tags"]) <= {"a", "b"}
    assert isinstance(value["nested"]["ok"], bool) and value["fixed"] == "x" and len(value["label"]) <= 4
    assert fill_schema(schema, "text") == value


# --- request validation -----------------------------------------------------------------------------


def test_invalid_requests(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(**ask(model="claude-does-not-exist"))
    assert info.value.body["error"]["type"] == "not_found_error"
    status, body = upstream.call("POST", "/v1/messages", {"model": "m", "messages": USER})
    assert status == 400 and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and "max_tokens" in body["error"]["message"]
    assert body["request_id"].startswith("req_sim_")
    req = urllib.request.Request(upstream.url + "/v1/messages?beta=true", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=5)
    assert http_err.value.code == 400
    assert json.loads(http_err.value.read())["error"]["type"] == "invalid_request_error"


# --- faults -------------------------------------------------------------------------------------------


def test_rate_limit_with_retry_after(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults({"kind": "rate_limit", "retry_after": 2})
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(**ask())
    assert info.value.status_code == 429 and info.value.response.headers["retry-after"] == "2"
    assert info.value.body["error"]["type"] == "rate_limit_error"


def test_overloaded_and_server_errors(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults({"kind": "overloaded", "count": 1}, {"kind": "server_error", "count": 1},
               {"kind": "server_error", "status": 504, "count": 1})
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        client.messages.create(**ask())
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.InternalServerError) as server:
        client.messages.create(**ask())
    assert server.value.status_code == 500 and server.value.body["error"]["type"] == "api_error"
    with pytest.raises(anthropic.InternalServerError) as timeout:
        client.messages.create(**ask())
    assert timeout.value.status_code == 504 and timeout.value.body["error"]["type"] == "timeout_error"


def test_connect_refused_is_a_connection_error(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults({"kind": "connect_refused", "count": 1})
    with pytest.raises(anthropic.APIConnectionError) as info:
        client.messages.create(**ask())
    assert not isinstance(info.value, anthropic.APITimeoutError)
    assert client.messages.create(**ask()).stop_reason == "end_turn"


def test_stall_non_stream_never_answers(upstream: RunningSim) -> None:
    upstream.faults({"kind": "stall", "stall_s": 30})
    started = time.monotonic()
    with anthropic.Anthropic(base_url=upstream.url, api_key="k", max_retries=0, timeout=0.3) as slow:
        with pytest.raises(anthropic.APITimeoutError):
            slow.messages.create(**ask())
    assert time.monotonic() - started < 2


def test_stream_stall_after_ping(upstream: RunningSim) -> None:
    upstream.faults({"kind": "stall", "stall_s": 30})
    frames, ending = raw_sse(upstream, ask(), timeout=0.3)
    assert names(frames) == ["message_start", "ping"] and ending == "timeout"


def test_stream_stall_after_content(upstream: RunningSim) -> None:
    upstream.faults({"kind": "stall_after_content", "after_events": 3, "stall_s": 30})
    frames, ending = raw_sse(upstream, ask(), timeout=0.3)
    assert names(frames) == ["message_start", "ping", "content_block_start"] + ["content_block_delta"] * 3
    assert ending == "timeout"


def test_stream_cut(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults({"kind": "cut", "after_events": 2})
    frames, ending = raw_sse(upstream, ask())
    assert names(frames) == ["message_start", "ping", "content_block_start"] + ["content_block_delta"] * 2
    assert ending in ("reset", "eof")  # a reset may be read as a short body; either way no message_stop
    # Mid-stream the SDK does not wrap transport errors: the client sees httpx2's ReadError/RemoteProtocolError.
    with pytest.raises(httpx2.TransportError):
        with client.messages.stream(**ask()) as stream:
            stream.get_final_message()


def test_non_stream_cut_truncates_body(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults({"kind": "cut"})
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**ask())


@pytest.mark.parametrize("kind,after", [("error_before_content", 0), ("error_after_content", 2)])
def test_stream_error_event(upstream: RunningSim, client: anthropic.Anthropic, kind: str, after: int) -> None:
    upstream.faults({"kind": kind, "after_events": after})
    frames, ending = raw_sse(upstream, ask())
    expected = ["message_start", "ping"] + (["content_block_start"] + ["content_block_delta"] * after if after else [])
    assert names(frames) == expected + ["error"] and ending == "eof"
    assert json.loads(frames[-1][1]) == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(**ask()) as stream:
            stream.get_final_message()
    assert info.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize("kind,after", [("malformed", 0), ("malformed_after_content", 1)])
def test_stream_malformed_frame(upstream: RunningSim, client: anthropic.Anthropic, kind: str, after: int) -> None:
    upstream.faults({"kind": kind, "after_events": after})
    frames, ending = raw_sse(upstream, ask())
    assert names(frames)[-1] == "content_block_delta" and ending == "eof"
    assert len([e for e in names(frames) if e == "content_block_delta"]) == after + 1
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[-1][1])
    with pytest.raises(ValueError):  # the SDK's JSON decode of the frame fails
        with client.messages.stream(**ask()) as stream:
            stream.get_final_message()


def test_stream_only_faults_are_529_without_stream(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults({"kind": "error_after_content"})
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(**ask())


def test_count_model_and_probability_semantics(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults(
        {"kind": "overloaded", "model": "claude-sonnet-4-6", "count": 2},
        {"kind": "rate_limit", "model": "claude-haiku-4-5", "probability": 0.0},
    )
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(**ask())
    assert client.messages.create(**ask()).stop_reason == "end_turn"
    assert client.messages.create(**ask(model="claude-opus-4-7")).stop_reason == "end_turn"
    assert client.messages.create(**ask(model="claude-haiku-4-5")).stop_reason == "end_turn"
    stats = upstream.call("GET", "/_sim/stats")[1]
    assert stats["faults"] == {"overloaded": 2}
    assert stats["models"] == {"claude-sonnet-4-6": 3, "claude-opus-4-7": 1, "claude-haiku-4-5": 1}
    assert stats["fault_rules_remaining"] == [0, None]


def test_fault_endpoints(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    upstream.faults({"kind": "overloaded"})
    assert client.messages.count_tokens(model="m", messages=USER).input_tokens > 0
    upstream.faults({"kind": "rate_limit", "endpoint": "count_tokens"})
    with pytest.raises(anthropic.RateLimitError):
        client.messages.count_tokens(model="m", messages=USER)
    assert client.messages.create(**ask()).stop_reason == "end_turn"
    upstream.faults({"kind": "overloaded", "endpoint": "*"})
    with pytest.raises(anthropic.OverloadedError):
        client.messages.count_tokens(model="m", messages=USER)
    assert len(client.models.list().data) == len(KNOWN_MODELS)  # listing is never faulted


# --- control endpoints ------------------------------------------------------------------------------


def test_request_log_records_what_was_sent(upstream: RunningSim) -> None:
    with anthropic.Anthropic(
        base_url=upstream.url, api_key="k", max_retries=0, default_headers={"anthropic-beta": "tools-2099"}
    ) as c:
        c.messages.create(**ask(metadata={"user_id": "u1"}), extra_query={"beta": "true"})
    upstream.faults({"kind": "overloaded", "count": 1})
    upstream.call("POST", "/v1/messages", ask())
    first, second = upstream.requests()
    assert first["path"] == "/v1/messages" and first["query"] == "beta=true" and first["method"] == "POST"
    assert first["headers"]["anthropic-beta"] == "tools-2099" and "anthropic-version" in first["headers"]
    assert first["body"]["metadata"] == {"user_id": "u1"} and first["model"] == "claude-sonnet-4-6"
    assert first["fault"] is None and second["fault"] == "overloaded"


def test_request_log_is_a_ring_buffer(upstream: RunningSim) -> None:
    for _ in range(205):
        upstream.call("GET", "/v1/models")
    assert len(upstream.requests()) == 200


def test_control_validation_and_reset(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    status, body = upstream.call("PUT", "/_sim/faults", {"faults": [{"kind": "explode"}]})
    assert status == 400 and "explode" in body["error"]
    status, body = upstream.call("PUT", "/_sim/faults", {"faults": [{"kind": "cut", "typo": 1}]})
    assert status == 400 and "typo" in body["error"]
    upstream.faults({"kind": "overloaded"})
    assert upstream.call("POST", "/_sim/reset")[0] == 200
    assert upstream.requests() == []
    assert client.messages.create(**ask()).stop_reason == "end_turn"


def test_profiles_control_latency(upstream: RunningSim, client: anthropic.Anthropic) -> None:
    status, _ = upstream.call(
        "PUT", "/_sim/profiles",
        {"profiles": {"claude-opus-4-8": {"ttft_ms": 150, "tokens_per_s": 100, "output_tokens": 10}}},
    )
    assert status == 200
    started = time.monotonic()
    message = client.messages.create(**ask(model="claude-opus-4-8"))
    assert time.monotonic() - started >= 0.15 + 0.1 * 0.9
    assert message.usage.output_tokens == 10
    started = time.monotonic()
    frames, _ = raw_sse(upstream, ask(model="claude-opus-4-8"))
    assert time.monotonic() - started >= 0.15 + 0.1 * 0.9  # ttft, then deltas paced at 100 tokens/s
    assert names(frames)[-1] == "message_stop"
    started = time.monotonic()
    client.messages.create(**ask(model="claude-haiku-4-5"))  # not in profiles, no "*": instant
    assert time.monotonic() - started < 0.15


def test_close_releases_stalled_requests() -> None:
    running = RunningSim(SimConfig(faults=[FaultRule(kind="stall", stall_s=3600)]))
    conn = http.client.HTTPConnection("127.0.0.1", running.server.port, timeout=5)
    conn.request("POST", "/v1/messages", json.dumps(ask()), {"content-type": "application/json"})
    time.sleep(0.1)  # let the request reach its stall
    started = time.monotonic()
    running.close()
    assert time.monotonic() - started < 3
    conn.close()


# --- config and CLI -----------------------------------------------------------------------------------


def test_default_profiles_order_tiers() -> None:
    config = SimConfig.default()
    haiku, sonnet, opus = (config.profile_for(m) for m in ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8"))
    assert haiku.ttft_ms < sonnet.ttft_ms < opus.ttft_ms <= 20
    assert haiku.tokens_per_s > sonnet.tokens_per_s > opus.tokens_per_s > 0
    assert config.profile_for("claude-unknown") == config.profiles["*"]


def test_config_load(tmp_path: Path) -> None:
    good = tmp_path / "sim.yaml"
    good.write_text("seed: 3\nprofiles:\n  '*': {ttft_ms: 1}\nfaults:\n  - {kind: cut, after_events: 4, count: 1}\n")
    config = SimConfig.load(good)
    assert config.seed == 3 and config.faults == [FaultRule(kind="cut", after_events=4, count=1)]
    assert config.profiles["*"].ttft_ms == 1
    as_json = tmp_path / "sim.json"
    as_json.write_text(json.dumps({"faults": [{"kind": "stall", "stall_s": 1}]}))
    assert SimConfig.load(as_json).faults[0].stall_s == 1
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("faults:\n  - {kind: cut, afterevents: 4}\n")
    with pytest.raises(ValueError, match="afterevents"):
        SimConfig.load(bad_key)
    bad_kind = tmp_path / "kind.yaml"
    bad_kind.write_text("faults:\n  - {kind: explode}\n")
    with pytest.raises(ValueError, match="unknown fault kind 'explode'"):
        SimConfig.load(bad_kind)
    with pytest.raises(ValueError, match="extension"):
        SimConfig.load(tmp_path / "sim.toml")


def test_fault_spec_parsing() -> None:
    rule = parse_fault_spec("claude-opus-4-5=rate_limit:retry_after=2,count=3")
    assert rule == FaultRule(kind="rate_limit", model="claude-opus-4-5", retry_after=2.0, count=3)
    assert parse_fault_spec("*=overloaded:probability=0.1") == FaultRule(kind="overloaded", probability=0.1)
    assert parse_fault_spec("server_error:status=503,endpoint=*").status == 503
    for bad in ("x=explode", "cut:after_events", "cut:bogus=1", "server_error:status=418"):
        with pytest.raises(ValueError, match="fault spec"):
            parse_fault_spec(bad)


def test_build_config_overrides(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_sim_arguments(parser)
    args = parser.parse_args(["--fault", "cut", "--latency-ms", "7", "--tokens-per-s", "0"])
    assert args.host == "127.0.0.1" and args.port == 9000
    config = build_config(args)
    assert config.faults == [FaultRule(kind="cut")]
    assert all(p.ttft_ms == 7 and p.tokens_per_s == 0 for p in config.profiles.values())
    assert set(KNOWN_MODELS) <= set(config.profiles)


def test_run_sim_serves_until_sigterm() -> None:
    code = (
        "import argparse, sys; from router.sim.cli import add_sim_arguments, run_sim;"
        "p = argparse.ArgumentParser(); add_sim_arguments(p); sys.exit(run_sim(p.parse_args(sys.argv[1:])))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--fault", "*=overloaded:count=1"],
        stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.split("listening on ")[1].split()[0]
        with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=5) as c:
            with pytest.raises(anthropic.OverloadedError):
                c.messages.create(**ask())
            assert c.messages.create(**ask()).stop_reason == "end_turn"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
