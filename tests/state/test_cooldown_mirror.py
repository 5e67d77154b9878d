"""Cooldowns shared through Redis pub/sub: each router keeps the shared table in memory, a 429 seen by one
is skipped by the other on its very next request, and no request reads the table from Redis while the
subscription is live (real routers, real Redis, the simulator as upstream)."""

from __future__ import annotations

import json
import re
import time
import urllib.request

from router.settings import Secret
from tests.state.helpers import client, tenants_yaml


def _pair(make_router, redis_server):
    files = {"tenants.yaml": tenants_yaml("")}
    return [make_router(files=files, state_url=Secret(redis_server.url), state_timeout=3.0) for _ in range(2)]


def _subscribed(router) -> bool:
    with urllib.request.urlopen(router.admin_url + "/readyz", timeout=5) as resp:
        return bool(json.loads(resp.read())["state"].get("cooldowns_subscribed"))


def _wait_subscribed(*routers, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(_subscribed(r) for r in routers):
        assert time.monotonic() < deadline, "the cooldown subscription did not go live"
        time.sleep(0.05)


def _calls(redis_server, command: str) -> int:
    """How many times Redis has run ``command`` at the top level or inside a script (INFO commandstats)."""
    text = redis_server.command("INFO", "commandstats").decode()
    match = re.search(rf"cmdstat_{command}:calls=(\d+)", text)
    return int(match.group(1)) if match else 0


def _ask(router, model: str = "opus", content: str = "hi"):
    return client(router.url).messages.with_raw_response.create(
        model=model, max_tokens=8, messages=[{"role": "user", "content": content}]
    )


def _cooling(router) -> set[str]:
    text = urllib.request.urlopen(router.admin_url + "/metrics", timeout=5).read().decode()
    return set(re.findall(r'^router_cooldowns_active\{model="([^"]+)"\} 1\.0$', text, re.M))


def test_the_other_router_skips_a_cooling_model_on_its_next_request_without_reading_redis(sim, make_router, redis_server):
    a, b = _pair(make_router, redis_server)
    _wait_subscribed(a, b)
    assert _ask(b).headers["x-router-model"] == "claude-opus-4-8"
    reads = _calls(redis_server, "hgetall")
    sim.faults({"kind": "rate_limit", "model": "claude-opus-4-8", "count": 1, "retry_after": 30})
    assert _ask(a, content="first").headers["x-router-attempts"].startswith("claude-opus-4-8:429")
    raw = _ask(b, content="next")  # at once: the window between a's answer and b's request is not waited out
    assert "claude-opus-4-8" not in raw.headers["x-router-attempts"], raw.headers["x-router-attempts"]
    for i in range(5):
        assert "claude-opus-4-8" not in _ask(b, content=f"more {i}").headers["x-router-attempts"]
    # The mark script reads the hash inside Redis once; no request read it over the wire.
    assert _calls(redis_server, "hgetall") - reads == 1, "a read of the cooldown table per request"
    assert "claude-opus-4-8" in _cooling(a) & _cooling(b)


def test_a_success_that_clears_a_cooldown_on_one_router_clears_it_on_the_other(sim, make_router, redis_server):
    a, b = _pair(make_router, redis_server)
    _wait_subscribed(a, b)
    # A model outside every tier is forwarded as named with no fallback, so a cooling one is still tried.
    sim.faults({"kind": "rate_limit", "model": "claude-fable-5", "count": 1, "retry_after": 30})
    try:
        _ask(a, model="claude-fable-5")
    except Exception as exc:  # noqa: BLE001 -- the 429 reaches the client: nothing to fall back to
        assert getattr(exc, "status_code", None) == 429, exc
    assert "claude-fable-5" in _cooling(a) & _cooling(b)
    assert _ask(b, model="claude-fable-5").headers["x-router-model"] == "claude-fable-5"
    deadline = time.monotonic() + 2
    while "claude-fable-5" in _cooling(a) | _cooling(b):
        assert time.monotonic() < deadline, (_cooling(a), _cooling(b))
        time.sleep(0.02)


def test_after_redis_restarts_the_subscription_reconnects_and_rereads_the_table(sim, make_router, redis_server):
    a, b = _pair(make_router, redis_server)
    _wait_subscribed(a, b)
    redis_server.kill()
    deadline = time.monotonic() + 10
    while _subscribed(b):
        assert time.monotonic() < deadline, "b still claims a live subscription with Redis gone"
        time.sleep(0.05)
    redis_server.start()
    # A cooldown written while b is not subscribed (straight into Redis, as another replica would).
    until_ms = int((time.time() + 30) * 1000)
    redis_server.command("HSET", "router:cooldowns", "claude-opus-4-8", f"{until_ms}:{until_ms - 30000}:429")
    _wait_subscribed(b, timeout=30)
    raw = _ask(b)
    assert "claude-opus-4-8" not in raw.headers["x-router-attempts"], raw.headers["x-router-attempts"]
    _wait_subscribed(a, timeout=30)
    sim.faults({"kind": "rate_limit", "model": "claude-sonnet-4-6", "count": 1, "retry_after": 30})
    assert _ask(a, model="sonnet").headers["x-router-attempts"].startswith("claude-sonnet-4-6:429")
    assert "claude-sonnet-4-6" not in _ask(b, model="sonnet").headers["x-router-attempts"]
