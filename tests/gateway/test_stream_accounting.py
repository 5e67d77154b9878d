"""Streams are charged what they consumed (issue 13, defects 2 and 3): prompt-cache tokens like JSON answers,
and the output relayed so far when the client leaves before the final ``message_delta``."""

from __future__ import annotations

import json
import logging
import time

import pytest
from prometheus_client import generate_latest

from router.policy.keys import hash_key
from tests.conftest import CLIENT_KEY, sdk_client

SONNET = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Summarise the design document."}]
TENANTS = f'tenants:\n  acme:\n    keys: ["{hash_key(CLIENT_KEY)}"]\n'


def services(router):
    return router.server.config.app.state.services


def metric(router, series: str) -> float:
    for line in generate_latest(services(router).metrics.registry).decode().splitlines():
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


COST = f'router_cost_usd_total{{model="{SONNET}",purpose="serving"}}'
SPEND = 'router_tenant_spend_usd_total{tenant="acme"}'


def test_streamed_and_json_answers_with_the_same_cached_usage_cost_the_same(make_router, sim, caplog):
    router = make_router(files={"tenants.yaml": TENANTS})
    sim.faults({"kind": "prompt_cache", "cache_read_tokens": 90_000, "cache_creation_tokens": 2_000, "input_tokens": 40})
    client = sdk_client(router)
    with caplog.at_level(logging.INFO, logger="router.access"):
        message = client.messages.create(model="sonnet", max_tokens=64, messages=MESSAGES)
        json_line = access_lines(caplog, 1)[0]
        json_cost, json_spend = metric(router, COST), metric(router, SPEND)
        with client.messages.stream(model="sonnet", max_tokens=64, messages=MESSAGES) as stream:
            streamed = stream.get_final_message()
        stream_line = access_lines(caplog, 2)[1]
    assert streamed.usage.model_dump() == message.usage.model_dump()
    # Sonnet: $3 input, $15 output, cache reads 0.1x and 5-minute writes 1.25x input, per million.
    u = message.usage
    expected = (u.input_tokens * 3 + u.output_tokens * 15 + 90_000 * 0.3 + 2_000 * 3.75) / 1e6
    assert json_cost == pytest.approx(expected)
    assert metric(router, COST) - json_cost == pytest.approx(expected)  # the stream's own share
    assert json_spend == pytest.approx(expected) and metric(router, SPEND) - json_spend == pytest.approx(expected)
    assert json_line["usd"] == stream_line["usd"] == pytest.approx(expected, abs=1e-6)
    for line in (json_line, stream_line):
        assert line["cache_read_input_tokens"] == 90_000 and line["cache_creation_input_tokens"] == 2_000
    assert metric(router, f'router_tokens_total{{model="{SONNET}",type="cache_read"}}') == 180_000


def test_client_leaving_mid_stream_pays_for_the_output_it_received(make_router, sim, caplog):
    router = make_router()
    # 400 tokens at 200/s: the stream runs 2 s; the client leaves after a few deltas.
    sim.profiles({"*": {"ttft_ms": 0, "tokens_per_s": 200, "output_tokens": 400}})
    received = ""
    with caplog.at_level(logging.INFO, logger="router.access"):
        with sdk_client(router).messages.stream(model="sonnet", max_tokens=1000, messages=MESSAGES) as stream:
            for event in stream:
                if event.type == "content_block_delta":
                    received += event.delta.text
                if len(received) > 120:
                    break
        (line,) = access_lines(caplog, 1)
    assert line["outcome"] == "client_closed"
    words = len(received.split())  # the sim's token is a word
    # Estimated from the text relayed (about four characters per token): the order of what was sent,
    # never the ~1 token message_start reports, never the 400 the full answer would have cost.
    assert words <= line["output_tokens"] <= len(received) // 2
    assert line["output_tokens"] < 200
    assert metric(router, f'router_tokens_total{{model="{SONNET}",type="output"}}') == line["output_tokens"]
