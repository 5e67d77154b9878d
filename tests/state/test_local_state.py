"""Local state rules: sticky routes expire; with Redis down a strict budget refuses (429, never a 5xx) and
an open one keeps serving; readyz reports the backend and stays ready."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from router.gateway.sticky import StickyModels
from router.settings import Secret
from tests.state.helpers import call, metric, scrape, tenants_yaml


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sticky_routes_expire_after_their_ttl_and_a_read_refreshes_them():
    clock = Clock()
    sticky = StickyModels(ttl=60.0, clock=clock)
    sticky.remember("conv", "claude-sonnet-4-6")
    clock.now = 59.0
    assert sticky.get("conv") == "claude-sonnet-4-6"  # refreshed to 119
    clock.now = 118.0
    assert sticky.get("conv") == "claude-sonnet-4-6"
    clock.now = 178.5
    assert sticky.get("conv") is None


def readyz(url: str) -> dict:
    with urllib.request.urlopen(url + "/readyz", timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


@pytest.mark.parametrize("enforcement", ["strict", "open"])
def test_redis_down_strict_budgets_refuse_open_ones_serve_and_readyz_stays_ready(make_router, redis_server, enforcement):
    router = make_router(
        files={"tenants.yaml": tenants_yaml("    budget: {monthly_usd: 100.0}")},
        state_url=Secret(redis_server.url),
        budget_enforcement=enforcement,
    )
    assert call(router.url, stream=False, max_tokens=8) == "ok"
    state = readyz(router.admin_url)["state"]
    assert {k: v for k, v in state.items() if k != "cooldowns_subscribed"} == {
        "backend": "redis", "degraded": False, "errors": 0, "pid": os.getpid()
    }
    redis_server.kill()
    outcomes = [call(router.url, stream=i % 2 == 0, max_tokens=8) for i in range(4)]
    assert outcomes == (["429"] * 4 if enforcement == "strict" else ["ok"] * 4)
    state = readyz(router.admin_url)["state"]
    assert state["backend"] == "redis" and state["degraded"] is True
    assert metric(scrape(router.admin_url), "router_state_degraded") == 1.0
