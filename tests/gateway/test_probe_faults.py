"""Fault-probe findings on the request path (issue 13): each test drives the real router with the real SDK
(or raw HTTP where the SDK cannot express the case) against the simulator's new fault kinds."""

from __future__ import annotations

import json

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
