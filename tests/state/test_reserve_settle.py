"""Reserve, then settle: a budget holds under concurrency because every admitted request first reserves its
estimated cost, and the real usage (cache tokens included, streams cut short included) replaces the
reservation afterwards."""

from __future__ import annotations

from functools import partial

from tests.state.helpers import call, concurrent, metric, scrape, tenants_yaml

BUDGET = 0.001


def test_concurrent_streams_cannot_overshoot_a_budget_by_more_than_the_reservations(sim, make_router):
    # Every answer takes 300 ms to its first token, so all 20 streams are in flight together: before
    # reservations existed each one saw an untouched budget and 20 x ~$0.00053 were spent against $0.001.
    sim.profiles({"*": {"ttft_ms": 300, "tokens_per_s": 0, "output_tokens": 12}})
    router = make_router(files={"tenants.yaml": tenants_yaml(f"    budget: {{monthly_usd: {BUDGET}}}")})
    outcomes = concurrent([partial(call, router.url, stream=True) for _ in range(20)], workers=20)
    assert set(outcomes) <= {"ok", "429"}, outcomes
    spent = metric(scrape(router.admin_url), "router_tenant_spend_usd_total", 'tenant="team-a"')
    # One request's reservation: ~12 input tokens at Opus' $5/M plus max_tokens=64 at $25/M = ~$0.0017.
    one_reservation = (12 * 5 + 64 * 25) / 1_000_000
    assert 0 < spent <= BUDGET + one_reservation, (spent, outcomes)
    assert outcomes.count("429") >= 10, outcomes
