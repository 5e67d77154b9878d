"""Message Batches through the router (issue 15, item 4): requests naming ``auto`` or a tier are planned by the
policy and sent to its first target, ``results_url`` points back at the router, and the batch's cost is booked
once -- at batch prices, to the tenant that created it -- when its results are read. Real SDK over HTTP,
through the router, against the simulator; Redis and the SQLite ledger as they run in production."""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from pathlib import Path

import anthropic
import pytest

from router.policy.keys import hash_key
from router.policy.loader import load_policy
from router.settings import Secret, Settings
from tests.conftest import CLIENT_KEY, POLICIES, ROOT, UPSTREAM_KEY, sdk_client
from tests.servers import RouterThread, free_port

KEY_A = "sk-router-batch-team-a-0001"
KEY_B = "sk-router-batch-team-b-0002"
TENANTS = f"""
tenants:
  team-a:
    keys: ["{hash_key(KEY_A)}"]
    budget: {{monthly_usd: 100}}
  team-b:
    keys: ["{hash_key(KEY_B)}"]
    allowed_tiers: [haiku]
"""
SIMPLE = [{"role": "user", "content": "What is the capital of France?"}]


def item(custom_id: str, model: str, max_tokens: int = 12, messages=SIMPLE) -> dict:
    return {"custom_id": custom_id, "params": {"model": model, "max_tokens": max_tokens, "messages": messages}}


def tenant(router, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key=key, max_retries=0, timeout=20)


def scrape(router) -> str:
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def sample(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def settled(router, gets: int) -> str:
    """/metrics once ``gets`` batch GETs have been accounted (a results file is booked after it was sent)."""
    end = time.monotonic() + 10
    while True:
        text = scrape(router)
        if sample(text, "router_passthrough_requests_total", 'family="batches",method="GET",outcome="ok"') >= gets:
            return text
        assert time.monotonic() < end, "the batch GETs were not accounted"
        time.sleep(0.02)


def expected_usd(results) -> float:
    """Half the tier table's standard prices, computed here from the table itself."""
    models = load_policy(POLICIES).tiers.models
    usd = 0.0
    for r in results:
        usage, info = r.result.message.usage, models[r.result.message.model]
        usd += (usage.input_tokens * info.input + usage.output_tokens * info.output) / 1_000_000
    return usd * 0.5


def batch_requests_seen(sim) -> list[dict]:
    return [r for r in sim.requests() if r["path"] == "/v1/messages/batches" and r["method"] == "POST"]


def test_auto_and_tier_names_are_planned_and_concrete_ids_pass_unchanged(router, sim):
    client = sdk_client(router)
    batch = client.messages.batches.create(
        requests=[item("auto", "auto"), item("tier", "sonnet"), item("id", "claude-haiku-4-5"), item("other", "claude-unknown-x")]
    )
    (seen,) = batch_requests_seen(sim)
    sent = {r["custom_id"]: r["params"]["model"] for r in seen["body"]["requests"]}
    tiers = load_policy(POLICIES).tiers
    assert sent["tier"] == tiers.tiers["sonnet"].primary == "claude-sonnet-4-6"
    assert sent["auto"] in {t.primary for t in tiers.tiers.values()}, "auto becomes a tier's model"
    assert sent["id"] == "claude-haiku-4-5" and sent["other"] == "claude-unknown-x"
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    assert [r["params"]["messages"] for r in seen["body"]["requests"]] == [SIMPLE] * 4, "nothing else changes"
    assert not [r for r in sim.requests() if r["path"] == "/v1/messages"], "no Haiku triage call per batch item"
    text = scrape(router)
    assert sample(text, "router_batch_requests_total", 'tier="sonnet"') >= 1
    assert sample(text, "router_passthrough_requests_total", 'family="batches",method="POST",outcome="ok"') == 1

    retrieved = client.messages.batches.retrieve(batch.id)
    assert retrieved.results_url == f"{router.url}/v1/messages/batches/{batch.id}/results", "results come via the router"
    listed = [b for b in client.messages.batches.list(limit=20) if b.id == batch.id]
    assert listed[0].results_url == retrieved.results_url
    models = {r.custom_id: r.result.message.model for r in client.messages.batches.results(batch.id)}
    assert models == sent


def test_a_batchs_cost_is_booked_once_at_batch_prices_to_its_creator(make_router, sim):
    router = make_router(files={"tenants.yaml": TENANTS})
    a = tenant(router, KEY_A)
    batch = a.messages.batches.create(requests=[item("x", "opus", 20), item("y", "haiku", 8), item("z", "claude-sonnet-4-6")])
    results = list(a.messages.batches.results(batch.id))
    assert {r.result.type for r in results} == {"succeeded"}
    want = expected_usd(results)
    text = settled(router, 2)  # retrieve + results
    booked = sum(sample(text, "router_cost_usd_total", f'model="{m}",purpose="batch"') for m in ("claude-opus-4-8", "claude-haiku-4-5", "claude-sonnet-4-6"))
    assert booked == pytest.approx(want, rel=1e-9) and want > 0
    assert sample(text, "router_tenant_spend_usd_total", 'tenant="team-a"') == pytest.approx(want, rel=1e-9)
    out_tokens = sum(r.result.message.usage.output_tokens for r in results if r.result.message.model == "claude-opus-4-8")
    assert sample(text, "router_tokens_total", 'model="claude-opus-4-8",type="output"') == out_tokens

    again = list(a.messages.batches.results(batch.id))  # fetched twice: booked once
    assert [r.custom_id for r in again] == [r.custom_id for r in results]
    text = settled(router, 4)
    assert sample(text, "router_tenant_spend_usd_total", 'tenant="team-a"') == pytest.approx(want, rel=1e-9)


def test_another_tenant_cannot_see_a_batch_and_a_tenant_keeps_its_tiers(make_router, sim):
    router = make_router(files={"tenants.yaml": TENANTS})
    batch = tenant(router, KEY_A).messages.batches.create(requests=[item("x", "haiku")])
    b = tenant(router, KEY_B)
    for call in (lambda: b.messages.batches.retrieve(batch.id), lambda: list(b.messages.batches.results(batch.id)),
                 lambda: b.messages.batches.cancel(batch.id)):
        with pytest.raises(anthropic.NotFoundError) as info:
            call()
        assert info.value.response.headers["request-id"].startswith("req_router_")
    assert sample(scrape(router), "router_tenant_spend_usd_total", 'tenant="team-b"') == 0

    own = b.messages.batches.create(requests=[item("o", "opus"), item("s", "sonnet"), item("a", "auto")])
    sent = {r["custom_id"]: r["params"]["model"] for r in batch_requests_seen(sim)[-1]["body"]["requests"]}
    assert set(sent.values()) == {"claude-haiku-4-5"}, "team-b may use haiku only, in batches too"
    assert b.messages.batches.retrieve(own.id).processing_status == "ended"


def test_a_request_the_policy_refuses_refuses_the_batch(router, sim):
    with pytest.raises(anthropic.NotFoundError) as info:
        sdk_client(router).messages.batches.create(requests=[item("fine", "haiku"), item("old", "claude-sonnet-4-5")])
    message = info.value.body["error"]["message"]
    assert message.startswith("requests[1] (custom_id 'old'):") and "retired" in message
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk_client(router).messages.batches.create(requests=[item("bad", "auto", messages="not a list")])
    assert info.value.body["error"]["message"].startswith("requests[0] (custom_id 'bad'):")
    assert batch_requests_seen(sim) == []
    with pytest.raises(anthropic.BadRequestError) as info:  # the upstream refuses this one: relayed as it is
        sdk_client(router).messages.batches.create(requests=[item("twice", "haiku"), item("twice", "haiku")])
    assert info.value.body["request_id"].startswith("req_sim_")
    text = scrape(router)
    assert sample(text, "router_batch_requests_total", 'tier="haiku"') == 0, "only accepted batches are counted"
    assert sample(text, "router_passthrough_requests_total", 'family="batches",method="POST",outcome="rejected"') == 2
    assert sample(text, "router_passthrough_requests_total", 'family="batches",method="POST",outcome="client_error"') == 1


def test_a_tenant_over_budget_cannot_create_batches(make_router, sim):
    tenants = f'tenants:\n  team-a:\n    keys: ["{hash_key(KEY_A)}"]\n    budget: {{monthly_usd: 0.0000001}}\n'
    router = make_router(files={"tenants.yaml": tenants})
    a = tenant(router, KEY_A)
    a.messages.create(model="haiku", max_tokens=8, messages=SIMPLE)  # spends past the tiny budget
    with pytest.raises(anthropic.RateLimitError) as info:
        a.messages.batches.create(requests=[item("x", "haiku")])
    assert "budget" in info.value.body["error"]["message"]
    assert batch_requests_seen(sim) == []
    assert a.beta.files.list().data is not None, "free calls still pass over budget"


def test_a_tenant_over_budget_with_downgrade_gets_its_batches_capped(make_router, sim):
    budget = "    budget: {monthly_usd: 0.0000001, on_exceeded: downgrade, downgrade_tier: haiku}\n"
    router = make_router(files={"tenants.yaml": f'tenants:\n  team-a:\n    keys: ["{hash_key(KEY_A)}"]\n' + budget})
    a = tenant(router, KEY_A)
    a.messages.create(model="haiku", max_tokens=8, messages=SIMPLE)  # spends past the tiny budget
    a.messages.batches.create(requests=[item("o", "opus"), item("s", "sonnet")])
    sent = {r["custom_id"]: r["params"]["model"] for r in batch_requests_seen(sim)[-1]["body"]["requests"]}
    assert sent == {"o": "claude-haiku-4-5", "s": "claude-haiku-4-5"}


def _router(sim, tmp_path: Path, **overrides) -> RouterThread:
    policies = tmp_path / "policies"
    if not policies.exists():
        shutil.copytree(POLICIES, policies)
        (policies / "tenants.yaml").write_text(TENANTS)
    settings = Settings(
        port=free_port(), policies_dir=policies, models_dir=ROOT / "models", upstream_url=sim.url,
        upstream_key=Secret(UPSTREAM_KEY), request_timeout=30.0, **overrides,
    )
    return RouterThread(settings).start()


def test_the_sqlite_ledger_remembers_owners_and_bookings_across_a_restart(sim, tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    first = _router(sim, tmp_path, ledger_path=ledger)
    try:
        batch = tenant(first, KEY_A).messages.batches.create(requests=[item("x", "sonnet")])
        want = expected_usd(list(tenant(first, KEY_A).messages.batches.results(batch.id)))
        assert sample(settled(first, 2), "router_tenant_spend_usd_total", 'tenant="team-a"') == pytest.approx(want)
    finally:
        first.stop()
    second = _router(sim, tmp_path, ledger_path=ledger)
    try:
        with pytest.raises(anthropic.NotFoundError):
            tenant(second, KEY_B).messages.batches.retrieve(batch.id)  # the owner survived the restart
        list(tenant(second, KEY_A).messages.batches.results(batch.id))
        text = settled(second, 2)  # (the 404 retrieve above is not "ok")
        assert sample(text, "router_cost_usd_total", 'model="claude-sonnet-4-6",purpose="batch"') == 0, "booked before the restart"
    finally:
        second.stop()


def test_replicas_sharing_redis_book_a_batch_once(sim, tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it from Debian's packages)")
    from tests.state.conftest import RedisServer

    redis = RedisServer(tmp_path).start()
    one = two = None
    try:
        one = _router(sim, tmp_path, state_url=Secret(redis.url))
        two = _router(sim, tmp_path, state_url=Secret(redis.url))
        batch = tenant(one, KEY_A).messages.batches.create(requests=[item("x", "opus")])
        with pytest.raises(anthropic.NotFoundError):
            tenant(two, KEY_B).messages.batches.retrieve(batch.id)  # the other replica knows the owner
        list(tenant(two, KEY_A).messages.batches.results(batch.id))
        settled(two, 2)
        list(tenant(one, KEY_A).messages.batches.results(batch.id))
        settled(one, 2)
        booked = [sample(scrape(r), "router_cost_usd_total", 'model="claude-opus-4-8",purpose="batch"') for r in (one, two)]
        assert booked[0] == 0 and booked[1] > 0, "booked by the replica that read the results first, once"
        assert redis.command("GET", f"router:batch:{batch.id}:owner").startswith(b"$6\r\nteam-a")
    finally:
        for r in (one, two):
            if r is not None:
                r.stop()
        redis.kill()


def test_open_mode_books_metrics_without_a_tenant(router, sim):
    client = sdk_client(router)
    batch = client.messages.batches.create(requests=[item("x", "haiku")])
    results = list(client.messages.batches.results(batch.id))
    text = settled(router, 2)
    assert sample(text, "router_cost_usd_total", 'model="claude-haiku-4-5",purpose="batch"') == pytest.approx(expected_usd(results))
    assert "router_tenant_spend_usd_total{" not in text
    assert CLIENT_KEY not in text
