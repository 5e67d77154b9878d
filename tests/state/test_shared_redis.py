"""Two routers sharing one real Redis behave as one: rate limits, budgets and cooldowns hold for the pair."""

from __future__ import annotations

import time
from functools import partial

from router.settings import Secret
from tests.state.helpers import call, client, concurrent, metric, scrape, tenants_yaml


def _pair(make_router, redis_server, extra: str, **overrides):
    files = {"tenants.yaml": tenants_yaml(extra)}
    url = Secret(redis_server.url)
    # Generous timeouts: both routers and the load share this process (and its GIL) on a busy machine.
    overrides = {"state_timeout": 3.0, "state_replicas": 2, **overrides}
    return [make_router(files=files, state_url=url, **overrides) for _ in range(2)]


def test_a_requests_per_minute_limit_holds_across_two_routers(make_router, redis_server):
    a, b = _pair(make_router, redis_server, "    rate_limit: {requests_per_minute: 60}")
    jobs = [partial(call, (a, b)[i % 2].url, stream=False, model="haiku", max_tokens=8) for i in range(180)]
    started = time.monotonic()
    outcomes = concurrent(jobs, workers=60)
    elapsed = time.monotonic() - started
    assert set(outcomes) <= {"ok", "429"}, outcomes
    # The bucket holds one minute's allowance (60) and refills at one request per second while the burst
    # runs, so on a slow machine a burst that lasts a few seconds earns those seconds' refill too.
    assert 55 <= outcomes.count("ok") <= 62 + int(elapsed), (outcomes.count("ok"), elapsed)


def test_a_budget_holds_across_two_routers_json_and_streams_mixed(sim, make_router, redis_server):
    # Every answer is 2000 Opus output tokens ($0.05); a reservation is max_tokens=4096 of them (~$0.10).
    sim.profiles({"*": {"ttft_ms": 50, "tokens_per_s": 0, "output_tokens": 2000}})
    a, b = _pair(make_router, redis_server, "    budget: {monthly_usd: 0.50}")
    jobs = [partial(call, (a, b)[i % 2].url, stream=i % 3 == 0, max_tokens=4096) for i in range(40)]
    outcomes = concurrent(jobs, workers=20)
    assert set(outcomes) <= {"ok", "429"}, outcomes
    # Requests refused while others' reservations filled the budget are not retried; finish the budget off
    # one request at a time, alternating routers, until it refuses.
    for i in range(12):
        if call((a, b)[i % 2].url, stream=i % 2 == 0, max_tokens=4096) == "429":
            break
    else:
        raise AssertionError("the budget never ran out")
    time.sleep(0.3)  # settling is written just after each reply
    spent = sum(metric(scrape(r.admin_url), "router_tenant_spend_usd_total", 'tenant="team-a"') for r in (a, b))
    one_reservation = (20 * 5 + 4096 * 25) / 1_000_000
    assert 0.50 <= spent <= 0.50 + one_reservation, (spent, outcomes.count("ok"))
    ledger = redis_server.command("KEYS", "router:*spent*").decode()
    assert "team-a" in ledger


def test_a_cooldown_learnt_by_one_router_is_honoured_by_the_other_at_once(sim, make_router, redis_server):
    a, b = _pair(make_router, redis_server, "")
    sim.faults({"kind": "rate_limit", "model": "claude-opus-4-8", "count": 1, "retry_after": 30})
    first = client(a.url).messages.with_raw_response.create(
        model="opus", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert first.headers["x-router-attempts"].startswith("claude-opus-4-8:429")
    before = len(sim.models_seen())
    raw = client(b.url).messages.with_raw_response.create(
        model="opus", max_tokens=8, messages=[{"role": "user", "content": "hello"}]
    )
    assert "claude-opus-4-8" not in raw.headers["x-router-attempts"], raw.headers["x-router-attempts"]
    assert "claude-opus-4-8" not in sim.models_seen()[before:]


def test_a_sticky_route_learnt_by_one_router_is_followed_by_the_other(make_router, redis_server):
    rules = "rules:\n  - name: sticky-default\n    then: {tier: requested, sticky: true}\n"
    files = {"tenants.yaml": tenants_yaml(""), "rules.yaml": rules}
    a, b = (make_router(files=files, state_url=Secret(redis_server.url), state_timeout=3.0) for _ in range(2))
    first = [{"role": "user", "content": "Plan a migration of our billing database."}]
    raw = client(a.url).messages.with_raw_response.create(model="sonnet", max_tokens=8, messages=first)
    assert raw.headers["x-router-model"] == "claude-sonnet-4-6"
    time.sleep(0.2)  # the route is written just after the reply
    follow = [*first, {"role": "assistant", "content": "Here is a plan."}, {"role": "user", "content": "go on"}]
    raw = client(b.url).messages.with_raw_response.create(model="opus", max_tokens=8, messages=follow)
    assert raw.headers["x-router-model"] == "claude-sonnet-4-6", "router b follows the route router a learnt"
