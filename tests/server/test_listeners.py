"""The two listeners: what the client port shows (the API, /livez, a bare /readyz) and what only the admin
listener shows (metrics, detailed readiness, reload, explain, classify, OpenAPI); classify on the client
port when the policy allows it, with the tenant's key, limits and budget; and the drain across both,
including a JSON request still waiting at the drain deadline (issue 13, defect 17, JSON part)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import urllib.request

import anthropic
import pytest

from router.policy.keys import hash_key
from tests.conftest import post, sdk_client

KEY = "sk-router-listener-test-00112233"
TENANTS = f"tenants:\n  team-a:\n    keys: [\"{hash_key(KEY)}\"]\n"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_client_port_shows_no_tenant_spend_or_reload_errors(make_router):
    router = make_router(files={"tenants.yaml": TENANTS + "    budget: {monthly_usd: 10}\n"})
    client = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0, timeout=20)
    client.messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
    assert get(router.url + "/readyz") == (200, b'{"status":"ready"}')
    assert get(router.url + "/livez")[0] == 200
    for path in ("/metrics", "/v1/router/openapi.json"):
        status, body = get(router.url + path)
        assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error", path
    for path in ("/v1/router/explain", "/v1/router/admin/reload", "/v1/router/classify"):
        status, _, body = post(router.url + path, b"{}", {"x-api-key": KEY})
        assert status == 404, path
    # The admin listener has them.
    status, body = get(router.admin_url + "/metrics")
    assert status == 200 and b'router_tenant_spend_usd_total{tenant="team-a"}' in body
    status, body = get(router.admin_url + "/readyz")
    assert status == 200 and json.loads(body)["policy"]["version"]
    # ... and does not serve the proxy API.
    status, _, _ = post(router.admin_url + "/v1/messages", b"{}", {"x-api-key": KEY})
    assert status == 404


def test_client_port_classify_only_when_the_policy_allows_it_then_as_the_tenant(make_router):
    tenants = "classify_endpoint: true\n" + TENANTS + "    rate_limit: {requests_per_minute: 2}\n"
    router = make_router(files={"tenants.yaml": tenants})
    url = router.url + "/v1/router/classify?local_only=true"
    body = json.dumps({"prompt": "What is 2 + 2?"}).encode()
    assert post(url, body, {"x-api-key": "sk-not-a-tenant-000000000000"})[0] == 401
    for _ in range(2):
        status, _, payload = post(url, body, {"x-api-key": KEY})
        assert status == 200 and json.loads(payload)["stage"] == "local"
    status, headers, payload = post(url, body, {"x-api-key": KEY})
    assert status == 429 and json.loads(payload)["error"]["type"] == "rate_limit_error" and "retry-after" in headers
    _, metrics = get(router.admin_url + "/metrics")
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("router_classifications_total{")
    )
    assert counted == 2


def test_sigterm_drains_both_listeners_and_a_stalled_json_request_gets_an_envelope(make_router, sim, caplog):
    caplog.set_level(logging.INFO, logger="router.access")
    sim.profiles({"*": {"ttft_ms": 20000, "tokens_per_s": 0, "output_tokens": 8}})  # the upstream stalls
    router = make_router(drain_seconds=1.0, request_timeout=60.0)
    outcome: dict[str, object] = {}

    def stalled() -> None:
        try:
            sdk_client(router).messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
        except anthropic.APIStatusError as exc:
            outcome["status"], outcome["body"] = exc.status_code, exc.body
            outcome["retry"] = exc.response.headers.get("x-should-retry")

    worker = threading.Thread(target=stalled)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    router.router.client.handle_exit(signal.SIGTERM, None)  # what the SIGTERM handler does
    time.sleep(0.3)
    status, body = get(router.admin_url + "/readyz")  # the admin listener still answers during the drain
    assert status == 503 and json.loads(body)["status"] == "draining"
    worker.join(10)
    assert outcome.get("status") == 503, outcome
    assert outcome["body"]["type"] == "error" and outcome["body"]["error"]["type"] == "api_error"  # type: ignore[index]
    assert outcome["retry"] == "true"
    assert time.monotonic() - started < 5
    assert any('"outcome":"shutdown"' in r.getMessage() for r in caplog.records)
    router.thread.join(10)
    assert not router.thread.is_alive()
    with pytest.raises(OSError):
        urllib.request.urlopen(router.admin_url + "/livez", timeout=2)


def test_client_port_classify_charges_the_haiku_call_to_the_tenant(make_router, sim):
    tenants = "classify_endpoint: true\n" + TENANTS + "    budget: {monthly_usd: 0.0000001}\n"
    router = make_router(files={"tenants.yaml": tenants, "classifier.yaml": "confidence_threshold: 1.0\n"})
    url = router.url + "/v1/router/classify"
    body = json.dumps({"prompt": "Write a Python function that merges two sorted lists."}).encode()
    status, _, payload = post(url, body, {"x-api-key": KEY})
    assert status == 200 and json.loads(payload)["stage"] == "haiku"
    assert len(sim.requests(triage=True)) == 1  # the Haiku call was made ...
    status, _, payload = post(url, body, {"x-api-key": KEY})
    assert status == 429 and "budget" in json.loads(payload)["error"]["message"]  # ... and charged to team-a
    assert len(sim.requests(triage=True)) == 1  # no Haiku call on a spent budget
    _, metrics = get(router.admin_url + "/metrics")
    spend = [line for line in metrics.decode().splitlines() if line.startswith('router_tenant_spend_usd_total{tenant="team-a"}')]
    assert spend and float(spend[0].rsplit(" ", 1)[1]) > 0
    assert b'router_cost_usd_total{model="claude-haiku-4-5",purpose="triage"}' in metrics
