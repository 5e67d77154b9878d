"""Policies while serving: tenants, rate limits and budgets as clients see them, the explain endpoint, the
admin reload, and hot reload under continuous traffic (valid and invalid edits, in place and by the
symlink swap Kubernetes ConfigMaps use) with zero failed requests."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import urllib.request

import anthropic
import pytest

from router.policy.keys import hash_key
from tests.conftest import POLICIES, post, sdk_client

KEY_A = "sk-router-team-a-0123456789abcdef"
KEY_B = "sk-router-team-b-fedcba9876543210"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def tenants_yaml(extra_a: str = "", extra_b: str = "") -> str:
    return f"""
tenants:
  team-a:
    keys: ["{hash_key(KEY_A)}"]
{extra_a}
  team-b:
    keys: ["{hash_key(KEY_B)}"]
{extra_b}
"""


def client(router, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key=key, max_retries=0, timeout=20)


def test_unknown_key_is_401_and_known_keys_map_to_tenants(make_router):
    router = make_router(files={"tenants.yaml": tenants_yaml()})
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(router, "sk-someone-else-000000000000").messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
    assert "sk-someone-else" not in json.dumps(info.value.body)
    assert client(router, KEY_A).messages.create(model="haiku", max_tokens=8, messages=MESSAGES).content


def test_allowed_tiers_keep_a_tenant_off_expensive_tiers(make_router):
    router = make_router(files={"tenants.yaml": tenants_yaml(extra_a="    allowed_tiers: [haiku]")})
    raw = client(router, KEY_A).messages.with_raw_response.create(model="opus", max_tokens=8, messages=MESSAGES)
    assert raw.headers["x-router-tier"] == "haiku"
    raw = client(router, KEY_B).messages.with_raw_response.create(model="opus", max_tokens=8, messages=MESSAGES)
    assert raw.headers["x-router-tier"] == "opus"


def test_rate_limit_answers_429_with_retry_after(make_router):
    router = make_router(files={"tenants.yaml": tenants_yaml(extra_a="    rate_limit: {requests_per_minute: 2}")})
    a = client(router, KEY_A)
    for _ in range(2):
        a.messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
    with pytest.raises(anthropic.RateLimitError) as info:
        a.messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.response.headers["x-should-retry"] == "true"
    assert "team-a" in info.value.body["error"]["message"]
    client(router, KEY_B).messages.create(model="haiku", max_tokens=8, messages=MESSAGES)  # other tenants unaffected
    exposition = scrape(router)
    assert KEY_A not in exposition and hash_key(KEY_A) not in exposition


def test_budget_reject_and_downgrade(make_router):
    budgets = tenants_yaml(
        extra_a="    budget: {monthly_usd: 0.0}",
        extra_b="    budget: {monthly_usd: 0.0, on_exceeded: downgrade, downgrade_tier: haiku}",
    )
    router = make_router(files={"tenants.yaml": budgets})
    with pytest.raises(anthropic.RateLimitError) as info:
        client(router, KEY_A).messages.create(model="opus", max_tokens=8, messages=MESSAGES)
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "budget" in info.value.body["error"]["message"]
    raw = client(router, KEY_B).messages.with_raw_response.create(model="opus", max_tokens=8, messages=MESSAGES)
    assert raw.headers["x-router-tier"] == "haiku"


def test_spend_is_counted_until_the_budget_runs_out(make_router):
    # A 0.0005 USD budget: each Opus answer is priced from its real usage, so the budget runs out after a few.
    router = make_router(files={"tenants.yaml": tenants_yaml(extra_a="    budget: {monthly_usd: 0.0005}")})
    a = client(router, KEY_A)
    a.messages.create(model="opus", max_tokens=8, messages=MESSAGES)  # within budget: ~0.0003 USD
    statuses = []
    for _ in range(5):
        try:
            a.messages.create(model="opus", max_tokens=8, messages=MESSAGES)
            statuses.append(200)
        except anthropic.RateLimitError:
            statuses.append(429)
    assert 429 in statuses and statuses[-1] == 429


def test_explain_endpoint_names_rule_origin_and_no_key(make_router, caplog):
    caplog.set_level(logging.DEBUG)
    router = make_router(files={"tenants.yaml": tenants_yaml()})
    body = {"model": "auto", "max_tokens": 50, "messages": [{"role": "user", "content": "Prove the Riemann hypothesis"}]}
    status, _, payload = post(router.admin_url + "/v1/router/explain", json.dumps(body).encode(), {"x-api-key": KEY_A})
    report = json.loads(payload)
    assert status == 200
    assert report["tenant"] == "team-a"
    assert report["rule"]["origin"].split(":")[0].endswith("rules.yaml")
    assert report["targets"] and report["classification"]["stage"] == "local"
    assert all("because" in item for item in report["not_matched"])
    text = payload.decode() + caplog.text
    assert KEY_A not in text and hash_key(KEY_A) not in text


def test_admin_reload_needs_the_admin_key(make_router, tmp_path):
    admin = "sk-admin-key-5f2a9c1e7d3b4a6f"
    router = make_router(admin_key_hash=hash_key(admin), policy_poll_seconds=3600.0)
    status, _, payload = post(router.admin_url + "/v1/router/admin/reload", b"", {"x-api-key": "wrong-key-000000000000"})
    assert status == 401
    status, _, payload = post(router.admin_url + "/v1/router/admin/reload", b"", {"x-api-key": admin})
    result = json.loads(payload)
    assert status == 200 and result["ok"] is True and result["trigger"] == "admin"
    disabled = make_router()
    status, _, _ = post(disabled.admin_url + "/v1/router/admin/reload", b"", {"x-api-key": admin})
    assert status == 403


def readyz(router) -> dict:
    with urllib.request.urlopen(router.admin_url + "/readyz", timeout=5) as resp:
        return json.loads(resp.read())


def scrape(router) -> str:
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def wait_for(check, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


DEFAULT_TO = "rules:\n  - name: default\n    then: {{tier: {tier}}}\n"


def test_twenty_policy_edits_under_traffic_fail_no_request(make_router, tmp_path):
    """Valid and invalid edits, in place and by ConfigMap-style symlink swap, while requests keep flowing."""
    # A ConfigMap-shaped directory: files are symlinks into ..data, which points at a versioned folder.
    live = tmp_path / "configmap"
    live.mkdir()

    def publish(version: int, rules: str) -> None:
        folder = live / f"..v{version}"
        folder.mkdir()
        for name in ("tiers.yaml", "classifier.yaml"):
            shutil.copy(POLICIES / name, folder / name)
        (folder / "rules.yaml").write_text(rules)
        tmp_link = live / "..data_tmp"
        os.symlink(folder.name, tmp_link)
        os.replace(tmp_link, live / "..data")  # the atomic swap Kubernetes does

    publish(0, DEFAULT_TO.format(tier="haiku"))
    for name in ("tiers.yaml", "classifier.yaml", "rules.yaml"):
        os.symlink(f"..data/{name}", live / name)
    router = make_router(policies_dir=live, policy_poll_seconds=0.05)

    failures: list[str] = []
    tiers_seen: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        c = sdk_client(router)
        while not stop.is_set():
            try:
                raw = c.messages.with_raw_response.create(model="auto", max_tokens=8, messages=MESSAGES)
                tiers_seen.append(raw.headers["x-router-tier"])
            except Exception as exc:  # noqa: BLE001 - any failure is what this test counts
                failures.append(repr(exc))

    worker = threading.Thread(target=traffic)
    worker.start()
    version = 0
    expected_tier = "haiku"
    try:
        for edit in range(20):
            before = readyz(router)["policy"]
            valid = edit % 2 == 0
            tier = ("sonnet", "haiku")[edit // 2 % 2]
            rules = DEFAULT_TO.format(tier=tier) if valid else "rules:\n  - name: default\n    then: {tier: sonnett}\n"
            if edit % 4 < 2:
                version += 1
                publish(version, rules)  # symlink swap
            else:
                (live / "..data" / "rules.yaml").write_text(rules)  # in-place write
            if valid:
                expected_tier = tier
                wait_for(lambda: readyz(router)["policy"]["version"] != before["version"])
                count = len(tiers_seen)
                wait_for(lambda: len(tiers_seen) > count + 2)
                assert tiers_seen[-1] == expected_tier
            else:
                wait_for(lambda: readyz(router)["policy"]["reloads_failed"] > before["reloads_failed"])
                status = readyz(router)["policy"]
                assert status["last_reload"]["ok"] is False
                assert "rules.yaml:3:" in status["last_reload"]["error"] and "sonnett" in status["last_reload"]["error"]
                assert status["version"] == before["version"], "the last good policy keeps serving"
                assert "router_policy_last_reload_ok 0.0" in scrape(router)
                count = len(tiers_seen)
                wait_for(lambda: len(tiers_seen) > count + 2)
                assert tiers_seen[-1] == expected_tier
    finally:
        stop.set()
        worker.join(10)
    final = readyz(router)["policy"]
    assert failures == []
    assert final["reloads_ok"] >= 10 and final["reloads_failed"] >= 10
    exposition = scrape(router)
    assert f'router_policy_reloads_total{{result="failed"}} {float(final["reloads_failed"])}' in exposition
    assert f'router_policy_info{{version="{final["version"]}"}} 1.0' in exposition
    assert len(tiers_seen) > 40


STICKY = """rules:
  - name: sticky-default
    then: {tier: requested, sticky: true}
"""


def test_sticky_rule_keeps_a_conversation_on_the_model_that_answered_it(make_router, sim):
    # No cooldown, so only stickiness (not a cooling Opus) can decide where the follow-ups go.
    tiers = (POLICIES / "tiers.yaml").read_text().replace("default_cooldown_seconds: 10", "default_cooldown_seconds: 0")
    assert "default_cooldown_seconds: 0" in tiers
    router = make_router(tiers_yaml=tiers, files={"rules.yaml": STICKY})
    c = sdk_client(router)
    first = [{"role": "user", "content": "Plan a migration of our billing database."}]
    raw = c.messages.with_raw_response.create(model="sonnet", max_tokens=8, messages=first)
    assert raw.headers["x-router-model"] == "claude-sonnet-4-6"  # the sonnet tier's primary answered
    follow = [*first, {"role": "assistant", "content": "Here is a plan."}, {"role": "user", "content": "go on"}]
    raw = c.messages.with_raw_response.create(model="opus", max_tokens=8, messages=follow)
    assert raw.headers["x-router-model"] == "claude-sonnet-4-6", "the conversation stays where its cache is"
    assert raw.headers["x-router-attempts"] == "claude-sonnet-4-6:200"
    # A fallback's answer is not remembered (issue 13, defect 7): Opus overloaded once, Sonnet answered,
    # and the follow-up goes back to Opus instead of being pinned to the fallback for good.
    fell_back = [{"role": "user", "content": "Draft the rollback plan."}]
    sim.faults({"kind": "overloaded", "model": "claude-opus-4-8", "count": 1})
    raw = c.messages.with_raw_response.create(model="opus", max_tokens=8, messages=fell_back)
    assert raw.headers["x-router-model"] == "claude-sonnet-4-6"
    follow = [*fell_back, {"role": "assistant", "content": "Here it is."}, {"role": "user", "content": "go on"}]
    raw = c.messages.with_raw_response.create(model="opus", max_tokens=8, messages=follow)
    assert raw.headers["x-router-model"] == "claude-opus-4-8"
    other = [{"role": "user", "content": "A different conversation."}]
    raw = c.messages.with_raw_response.create(model="opus", max_tokens=8, messages=other)
    assert raw.headers["x-router-model"] == "claude-opus-4-8"
