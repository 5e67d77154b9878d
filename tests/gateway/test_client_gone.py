"""A client that leaves before its answer is ready is noticed at once (issue 13, defect 5): the attempt in
flight is abandoned, no further tier and no Haiku call is made for nobody, and the request is logged
``client_closed``. And tenant accounting of count_tokens and triage (defect 12)."""

from __future__ import annotations

import json
import logging
import time

import anthropic
import pytest

from router.policy.keys import hash_key
from tests.conftest import CLIENT_KEY, is_triage_call, sdk_client
from tests.gateway.test_stream_accounting import metric

OPUS, SONNET, HAIKU = "claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Write a Python function that parses a CSV file. Fix the bug in my loop."}]
ALWAYS_HAIKU = "confidence_threshold: 1.0\n"


def access_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]


def wait_line(caplog, timeout: float = 5.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = access_lines(caplog)
        if lines:
            return lines[0]
        time.sleep(0.01)
    raise AssertionError("no access line")


def leave_early(router, **request) -> None:
    client = anthropic.Anthropic(base_url=router.url, api_key=CLIENT_KEY, max_retries=0, timeout=0.3)
    with pytest.raises(anthropic.APITimeoutError):
        if request.get("stream"):
            with client.messages.stream(**{k: v for k, v in request.items() if k != "stream"}) as stream:
                stream.get_final_message()
        else:
            client.messages.create(**request)


@pytest.mark.parametrize("stream", [False, True])
def test_client_gone_while_dispatching_stops_every_further_attempt(make_router, sim, caplog, stream):
    # A stalled Opus would fall back to Sonnet after 0.5 s (stream) or 0.9 s (JSON): for nobody.
    router = make_router(first_content_timeout=0.5)
    sim.faults({"kind": "stall", "model": OPUS, "stall_s": 30})
    with caplog.at_level(logging.INFO, logger="router.access"):
        leave_early(router, model="opus", max_tokens=8, messages=MESSAGES, stream=stream)
        line = wait_line(caplog)
        time.sleep(1.2)  # past the moment the next tier would have been tried
    assert sim.models_seen() == [OPUS]
    assert line["outcome"] == "client_closed" and line["attempts"] == [f"{OPUS}:client_gone"]
    assert len(access_lines(caplog)) == 1
    assert metric(router, 'router_requests_total{outcome="client_closed",rule="default",tier="opus"}') == 1
    assert metric(router, "router_requests_in_flight") == 0


def test_client_gone_during_triage_means_no_serving_call(make_router, sim, caplog):
    router = make_router(files={"classifier.yaml": ALWAYS_HAIKU})
    sim.faults({"kind": "stall", "model": HAIKU, "stall_s": 30})  # the triage deadline is 1.5 s
    with caplog.at_level(logging.INFO, logger="router.access"):
        leave_early(router, model="auto", max_tokens=8, messages=MESSAGES)
        line = wait_line(caplog)
        time.sleep(1.8)  # past the triage deadline, when the serving call would have gone out
    assert sim.requests() == [] and len([r for r in sim.requests(triage=True) if is_triage_call(r)]) == 1
    assert line["outcome"] == "client_closed" and line["attempts"] == [] and line["tier"] is None


TENANTS = f'tenants:\n  acme:\n    keys: ["{hash_key(CLIENT_KEY)}"]\n'


def test_count_tokens_takes_from_the_request_rate_limit(make_router, sim):
    tenants = TENANTS + "    rate_limit: {requests_per_minute: 2, tokens_per_minute: 1}\n"
    router = make_router(files={"tenants.yaml": tenants})
    client = sdk_client(router)
    for _ in range(2):  # a token limit of 1 does not refuse them: count_tokens estimates no tokens
        assert client.messages.count_tokens(model="sonnet", messages=MESSAGES).input_tokens > 0
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.count_tokens(model="sonnet", messages=MESSAGES)
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert len(sim.requests()) == 2


def test_count_tokens_is_free_for_a_tenant_over_budget(make_router, sim):
    tenants = TENANTS + "    budget: {monthly_usd: 0.000001}\n"
    router = make_router(files={"tenants.yaml": tenants})
    client = sdk_client(router)
    client.messages.create(model="sonnet", max_tokens=8, messages=MESSAGES)  # spends the budget
    assert client.messages.count_tokens(model="sonnet", messages=MESSAGES).input_tokens > 0


def test_triage_cost_is_charged_to_the_tenant_and_logged_apart(make_router, sim, caplog):
    router = make_router(files={"tenants.yaml": TENANTS, "classifier.yaml": ALWAYS_HAIKU})
    with caplog.at_level(logging.INFO, logger="router.access"):
        sdk_client(router).messages.create(model="auto", max_tokens=8, messages=MESSAGES)
        line = wait_line(caplog)
    triage = metric(router, f'router_cost_usd_total{{model="{HAIKU}",purpose="triage"}}')
    assert triage > 0 and line["triage_usd"] == pytest.approx(triage, abs=1e-6)
    spend = metric(router, 'router_tenant_spend_usd_total{tenant="acme"}')
    assert spend == pytest.approx(line["usd"] + triage, abs=1e-6) and line["usd"] > 0
