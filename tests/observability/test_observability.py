"""Metrics count what happened, label sets stay bounded, and SIGTERM drains: a stream in flight finishes,
a new request is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.request

import anthropic
import httpx2
import pytest

from router.policy.keys import hash_key
from tests.conftest import ROOT, post, sdk_client
from tests.servers import free_port

MESSAGES = [{"role": "user", "content": "Say hello."}]


def scrape(router) -> str:
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def value(exposition: str, series: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_attempts_fallbacks_tokens_and_spend(router, sim):
    sim.faults({"kind": "rate_limit", "model": "claude-opus-4-8", "retry_after": 30, "count": 1})
    message = sdk_client(router).messages.create(model="opus", max_tokens=16, messages=MESSAGES)
    with sdk_client(router).messages.stream(model="haiku", max_tokens=16, messages=MESSAGES) as stream:
        streamed = stream.get_final_message()
    m = scrape(router)
    assert value(m, 'router_upstream_attempts_total{error_type="rate_limit",model="claude-opus-4-8",status="429"}') == 1
    assert value(m, 'router_upstream_attempts_total{error_type="none",model="claude-sonnet-4-6",status="200"}') == 1
    assert value(m, 'router_fallbacks_total{from_tier="opus",reason="rate_limit",to_tier="sonnet"}') == 1
    assert value(m, 'router_requests_total{outcome="ok",rule="default",tier="opus"}') == 1
    assert value(m, 'router_requests_total{outcome="ok",rule="default",tier="haiku"}') == 1
    assert value(m, 'router_tokens_total{model="claude-sonnet-4-6",type="output"}') == message.usage.output_tokens
    assert value(m, 'router_tokens_total{model="claude-haiku-4-5",type="output"}') == streamed.usage.output_tokens
    expected_usd = (message.usage.input_tokens * 3 + message.usage.output_tokens * 15) / 1e6
    assert value(m, 'router_cost_usd_total{model="claude-sonnet-4-6",purpose="serving"}') == pytest.approx(expected_usd)
    assert value(m, 'router_cooldowns_active{model="claude-opus-4-8"}') == 1
    assert value(m, 'router_time_to_first_token_seconds_count{tier="haiku"}') == 1
    assert value(m, "router_requests_in_flight") == 0


def test_every_request_is_counted_once_even_when_refused(router):
    post(router.url + "/v1/messages", b"{bad json", {"x-api-key": "k"})
    post(router.url + "/v1/messages", b'{"model": "auto", "messages": []}', {})
    m = scrape(router)
    assert value(m, 'router_requests_total{outcome="rejected",rule="none",tier="none"}') == 2
    assert value(m, "router_requests_in_flight") == 0


def test_process_cpu_memory_and_gc_are_exposed_for_cpu_per_request(router):
    """The dashboard's CPU-per-request panel divides process CPU by requests: both must be there, and the
    CPU counter must move with work."""
    before = scrape(router)
    for _ in range(20):
        sdk_client(router).messages.create(model="auto", max_tokens=16, messages=MESSAGES)
    after = scrape(router)
    assert value(after, "process_cpu_seconds_total") > value(before, "process_cpu_seconds_total") > 0
    assert value(after, "process_resident_memory_bytes") > 10e6
    assert value(after, "process_open_fds") > 0
    for generation in ("0", "1", "2"):
        assert f'python_gc_collections_total{{generation="{generation}"}}' in after


def test_label_sets_stay_bounded_under_random_models_keys_and_paths(make_router, sim):
    key = "sk-router-cardinality-0123456789"
    tenants = f'tenants:\n  only:\n    keys: ["{hash_key(key)}"]\n'
    router = make_router(files={"tenants.yaml": tenants})
    rng = random.Random(1)

    def junk(n: int = 12) -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))

    def series_count() -> int:
        return sum(1 for line in scrape(router).splitlines() if line and not line.startswith("#"))

    def burst() -> None:
        for _ in range(15):
            body = json.dumps({"model": "claude-" + junk(), "max_tokens": 4, "messages": MESSAGES}).encode()
            post(router.url + "/v1/messages", body, {"x-api-key": key})  # unknown model: passthrough
            post(router.url + "/v1/messages", body, {"x-api-key": "sk-" + junk(24)})  # unknown key: 401
            post(router.url + "/v1/" + junk(), b"{}", {"x-api-key": key})  # unknown path: 404

    burst()
    after_first = series_count()
    burst()
    assert series_count() == after_first, "new model strings, keys and paths must not create series"
    exposition = scrape(router)
    assert key not in exposition and hash_key(key) not in exposition
    assert 'model="other"' in exposition


def test_sigterm_drains_streams_in_flight_and_refuses_new_requests(sim):
    sim.profiles({"*": {"ttft_ms": 0, "tokens_per_s": 40, "output_tokens": 60}})  # ~1.5 s stream
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ROUTER_"))}
    env["ANTHROPIC_API_KEY"] = "sk-upstream-drain-test"
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--port", str(port), "--admin-port", "-1", "--upstream-url", sim.url, "--drain-seconds", "10"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/readyz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        events: list[str] = []
        first_content = threading.Event()

        def stream() -> None:
            body = {"model": "haiku", "max_tokens": 60, "stream": True, "messages": MESSAGES}
            with httpx2.Client(timeout=30) as client:
                with client.stream("POST", url + "/v1/messages", json=body, headers={"x-api-key": "k"}) as response:
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            events.append(line[7:])
                            if line == "event: content_block_delta":
                                first_content.set()

        worker = threading.Thread(target=stream)
        worker.start()
        assert first_content.wait(10)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises((anthropic.APIConnectionError, OSError)):
            client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=3)
            client.messages.create(model="haiku", max_tokens=4, messages=MESSAGES)
        worker.join(20)
        assert events[-1] == "message_stop", "the stream started before SIGTERM finished normally"
        assert events.count("content_block_delta") > 3
        # uvicorn re-raises the captured SIGTERM once shutdown is done, so the exit status says "terminated".
        assert proc.wait(15) in (0, -signal.SIGTERM)
        assert b"draining" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
