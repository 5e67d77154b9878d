"""The status page's numbers (``router.server.status``) and its two endpoints on the admin listener.

The arithmetic of ``status_snapshot`` on hand-built samples (sums over labels, errors, shares, the
savings estimate against always-Opus, tenants' budgets), the same function on a real ``Metrics``
registry's exposition (the names it reads are the names the router writes), and over HTTP: real traffic
through the router with the anthropic SDK, then ``GET /v1/router/status`` on the admin listener; the
client port answers 404 for the page and the JSON.
"""

from __future__ import annotations

import json
import shutil
import tomllib
import urllib.request
from pathlib import Path

import anthropic
import jsonschema
import pytest

from router.observability.metrics import Metrics
from router.policy.keys import hash_key
from router.policy.loader import load_policy
from router.policy.pricing import cost_usd
from router.server.status import load_page, page_csp, samples_from_exposition, status_snapshot
from tests.conftest import POLICIES, ROOT

KEY_A = "sk-router-status-test-a-5521"
KEY_B = "sk-router-status-test-b-7730"
TENANTS = (
    "tenants:\n"
    f"  team-a:\n    keys: [\"{hash_key(KEY_A)}\"]\n    budget: {{monthly_usd: 20}}\n"
    f"  team-b:\n    keys: [\"{hash_key(KEY_B)}\"]\n"
)
MESSAGES = [{"role": "user", "content": "Say hello."}]
DETAILS = {"version": "v-test", "last_reload": None, "reloads_ok": 0, "reloads_failed": 0}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("policies") / "p"
    shutil.copytree(POLICIES, directory)
    (directory / "tenants.yaml").write_text(TENANTS)
    return load_policy(directory)


def snap(samples, policy, cooling=None, now=1000.0):
    return status_snapshot(
        samples, policy, now=now, policy_details=DETAILS, state={"backend": "memory"}, cooling=cooling or {},
        upstream="custom", draining=False,
    )


def req(tier, rule, outcome, n):
    return ("router_requests_total", {"tier": tier, "rule": rule, "outcome": outcome}, float(n))


def test_no_traffic_yet_is_zeros_and_unknown_ratios_not_divisions_by_zero(policy):
    s = snap([], policy)
    assert s["totals"] == {"requests": 0, "errors": 0, "error_rate": None, "in_flight": 0}
    assert [t["tier"] for t in s["tiers"]] == ["haiku", "sonnet", "opus"]
    assert all(t["requests"] == 0 and t["error_rate"] is None and t["auto_share"] is None for t in s["tiers"])
    assert s["rules"] == [] and s["fallbacks"]["paths"] == [] and s["fallbacks"]["cooldowns"] == []
    assert s["cost"]["savings_ratio"] is None and s["cost"]["spent_usd"] == 0.0
    assert s["triage"]["haiku_share"] is None and s["triage"]["simulated"] is False
    assert s["auto"] == {"measured": False, "requests": 0, "share_of_all": None}
    assert s["uptime_seconds"] is None
    # Tenants come from the policy, by name; nothing spent yet.
    assert [(t["tenant"], t["budget_usd"], t["used_ratio"]) for t in s["tenants"]] == [("team-a", 20.0, None), ("team-b", None, None)]


def test_requests_errors_and_rules_are_summed_over_the_other_labels(policy):
    samples = [
        req("haiku", "default", "ok", 6),
        req("haiku", "cheap-hint", "ok", 2),
        req("haiku", "default", "upstream_error", 1),
        req("haiku", "default", "client_closed", 1),  # the client leaving is not an error
        req("opus", "hard-reasoning", "ok", 3),
        req("opus", "hard-reasoning", "stream_error", 1),
        req("none", "none", "rejected", 2),
    ]
    s = snap(samples, policy)
    tiers = {t["tier"]: t for t in s["tiers"]}
    assert list(tiers) == ["haiku", "sonnet", "opus", "none"]  # policy order, then tiers only the metrics know
    assert (tiers["haiku"]["requests"], tiers["haiku"]["errors"]) == (10, 1)
    assert tiers["haiku"]["error_rate"] == pytest.approx(0.1)
    assert tiers["haiku"]["outcomes"] == {"client_closed": 1, "ok": 8, "upstream_error": 1}
    assert (tiers["opus"]["requests"], tiers["opus"]["errors"]) == (4, 1)
    assert (tiers["none"]["requests"], tiers["none"]["errors"], tiers["none"]["model"]) == (2, 2, None)
    assert tiers["sonnet"]["model"] == policy.tiers.tiers["sonnet"].primary
    assert s["totals"]["requests"] == 16 and s["totals"]["errors"] == 4
    assert s["totals"]["error_rate"] == pytest.approx(4 / 16)
    rules = [(r["rule"], r["requests"], r["errors"]) for r in s["rules"]]
    assert rules == [("default", 8, 1), ("hard-reasoning", 4, 1), ("cheap-hint", 2, 0), ("none", 2, 2)]
    assert sum(r["share"] for r in s["rules"]) == pytest.approx(1.0)
    assert s["rules"][0]["share"] == pytest.approx(0.5)


def test_auto_share_per_tier(policy):
    samples = [
        req("haiku", "default", "ok", 10),
        req("opus", "default", "ok", 10),
        ("router_auto_requests_total", {"tier": "haiku"}, 6.0),
        ("router_auto_requests_total", {"tier": "sonnet"}, 0.0),
        ("router_auto_requests_total", {"tier": "opus"}, 2.0),
    ]
    s = snap(samples, policy)
    share = {t["tier"]: t["auto_share"] for t in s["tiers"]}
    assert share == {"haiku": pytest.approx(0.75), "sonnet": 0.0, "opus": pytest.approx(0.25)}
    assert s["auto"] == {"measured": True, "requests": 8, "share_of_all": pytest.approx(8 / 20)}


def test_savings_price_the_same_tokens_on_the_opus_primary_and_subtract_serving_and_triage(policy):
    haiku, sonnet = policy.tiers.tiers["haiku"].primary, policy.tiers.tiers["sonnet"].primary
    opus = policy.tiers.models[policy.tiers.tiers["opus"].primary]
    samples = [
        ("router_tokens_total", {"model": haiku, "type": "input"}, 1_000_000.0),
        ("router_tokens_total", {"model": haiku, "type": "output"}, 200_000.0),
        ("router_tokens_total", {"model": sonnet, "type": "input"}, 100_000.0),
        ("router_tokens_total", {"model": sonnet, "type": "cache_read"}, 500_000.0),
        ("router_tokens_total", {"model": sonnet, "type": "cache_write"}, 40_000.0),
        ("router_tokens_total", {"model": "family:sonnet", "type": "output"}, 10_000.0),  # unlisted id: priced by family
        ("router_tokens_total", {"model": "other", "type": "input"}, 7_000.0),  # no price: out of both sides
        ("router_cost_usd_total", {"model": haiku, "purpose": "serving"}, 2.0),
        ("router_cost_usd_total", {"model": sonnet, "purpose": "serving"}, 0.75),
        ("router_cost_usd_total", {"model": "family:sonnet", "purpose": "serving"}, 0.15),
        ("router_cost_usd_total", {"model": haiku, "purpose": "triage"}, 0.05),
    ]
    s = snap(samples, policy)["cost"]
    expected_opus = cost_usd(opus, 1_100_000, 210_000, 500_000, 40_000)
    # By hand for the shipped prices (Opus $5 in / $25 out, cache read 0.1x, write 1.25x):
    assert opus.input == 5 and opus.output == 25
    assert expected_opus == pytest.approx((1_100_000 * 5 + 210_000 * 25 + 500_000 * 0.5 + 40_000 * 6.25) / 1e6)
    assert s["always_opus_usd"] == pytest.approx(expected_opus)
    assert s["serving_usd"] == pytest.approx(2.9) and s["triage_usd"] == pytest.approx(0.05)
    assert s["spent_usd"] == pytest.approx(2.95)
    assert s["savings_usd"] == pytest.approx(expected_opus - 2.95)
    assert s["savings_ratio"] == pytest.approx((expected_opus - 2.95) / expected_opus)
    assert s["unpriced_tokens"] == 7000
    assert s["reference_model"] == policy.tiers.tiers["opus"].primary
    triage = snap(samples, policy)["triage"]
    assert triage["spend_usd"] == pytest.approx(0.05) and triage["share_of_spend"] == pytest.approx(0.05 / 2.95)


def test_triage_share_fallbacks_cooldowns_tenants_and_uptime(policy):
    samples = [
        ("router_classifications_total", {"stage": "local", "category": "code"}, 5.0),
        ("router_classifications_total", {"stage": "local", "category": "chitchat"}, 1.0),
        ("router_classifications_total", {"stage": "haiku", "category": "code"}, 3.0),
        ("router_classifications_total", {"stage": "fallback", "category": "math"}, 1.0),
        ("router_classifications_total", {"stage": "haiku-sim", "category": "code"}, 2.0),
        ("router_triage_haiku_calls_total", {"outcome": "ok"}, 3.0),
        ("router_triage_haiku_calls_total", {"outcome": "timeout"}, 1.0),
        ("router_fallbacks_total", {"from_tier": "opus", "to_tier": "sonnet", "reason": "rate_limit"}, 4.0),
        ("router_fallbacks_total", {"from_tier": "sonnet", "to_tier": "haiku", "reason": "overloaded"}, 1.0),
        ("router_fallbacks_total", {"from_tier": "haiku", "to_tier": "sonnet", "reason": "rate_limit"}, 2.0),
        ("router_fallbacks_exhausted_total", {"tier": "opus"}, 1.0),
        ("router_tenant_spend_usd_total", {"tenant": "team-a"}, 3.5),
        ("router_tenant_spend_usd_total", {"tenant": "team-b"}, 1.25),
        ("router_tenant_budget_used_ratio", {"tenant": "team-a"}, 0.25),
        ("process_start_time_seconds", {}, 400.0),
    ]
    s = snap(samples, policy, cooling={"claude-opus-4-8": 7.26, "claude-sonnet-4-6": -0.5})
    t = s["triage"]
    assert t["classifications"] == 12 and t["by_stage"] == {"fallback": 1, "haiku": 3, "haiku-sim": 2, "local": 6}
    assert t["haiku_share"] == pytest.approx(5 / 12) and t["simulated"] is True  # demo mode's Haiku, marked
    assert t["haiku_calls"] == {"ok": 3, "timeout": 1}
    f = s["fallbacks"]
    assert (f["total"], f["exhausted"]) == (7, 1)
    assert f["by_reason"] == {"overloaded": 1, "rate_limit": 6}
    assert f["paths"][0] == {"from": "opus", "to": "sonnet", "reason": "rate_limit", "count": 4}
    assert f["cooldowns"] == [{"model": "claude-opus-4-8", "seconds_left": 7.3}, {"model": "claude-sonnet-4-6", "seconds_left": 0.0}]
    a, b = s["tenants"]
    assert a == {"tenant": "team-a", "spent_since_start_usd": 3.5, "month_spent_usd": 5.0, "budget_usd": 20.0,
                 "used_ratio": 0.25, "on_exceeded": "reject"}
    assert b["month_spent_usd"] is None and b["spent_since_start_usd"] == 1.25 and b["budget_usd"] is None
    assert s["uptime_seconds"] == 600.0


def test_the_names_it_reads_are_the_ones_the_router_writes(policy):
    """A real registry's samples (counters have ``_total`` and ``_created`` samples in one process; only
    the totals count), read directly and through the text exposition, give the same snapshot."""
    m = Metrics()
    haiku = policy.tiers.tiers["haiku"].primary
    m.requests.labels("haiku", "default", "ok").inc(3)
    m.requests.labels("haiku", "default", "upstream_error").inc()
    m.auto_requests.labels("haiku").inc(2)
    m.tokens.labels(haiku, "input").inc(1000)
    m.cost.labels(haiku, "serving").inc(0.001)
    m.fallbacks.labels("opus", "haiku", "overloaded").inc()
    m.classifications.labels("haiku", "code").inc()
    m.tenant_spend.labels("team-a").inc(0.5)
    m.in_flight.inc()
    s = snap(m.samples(), policy, now=2e9)
    # What the endpoint reads is what /metrics renders.
    assert snap(samples_from_exposition(m.render().decode()), policy, now=2e9) == s
    haiku_row = s["tiers"][0]
    assert (haiku_row["requests"], haiku_row["errors"], haiku_row["auto_requests"]) == (4, 1, 2)
    assert s["totals"]["in_flight"] == 1 and s["fallbacks"]["total"] == 1
    assert s["cost"]["serving_usd"] == pytest.approx(0.001)
    assert s["cost"]["always_opus_usd"] == pytest.approx(1000 * 5 / 1e6)
    assert s["triage"]["haiku_share"] == 1.0
    assert s["tenants"][0]["spent_since_start_usd"] == 0.5
    assert s["uptime_seconds"] is not None and s["uptime_seconds"] > 0  # the process collector's start time


def test_the_page_is_package_data_self_contained_and_its_csp_allows_only_its_own_script():
    page = load_page()
    html = page.body.decode()
    assert "<title>Triage router status</title>" in html
    # Nothing loads from elsewhere: no URL but the SVG namespace, no stylesheet or script by reference, the
    # icon an empty data: URL (no /favicon.ico request).
    inline = html.replace("http://www.w3.org/2000/svg", "").replace('<link rel="icon" href="data:,">', "")
    for outside in ("http://", "https://", "//", "@import", "<link", "src=", "url("):
        assert outside not in inline, outside
    assert ".innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html
    assert "script-src 'sha256-" in page.csp and "connect-src 'self'" in page.csp and "default-src 'none'" in page.csp
    assert page_csp(html.replace("refreshMs", "refreshMS").encode()) != page.csp  # the hash covers the script
    # ... and it ships in the wheel (setuptools packages only .py files unless told).
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "status_page.html" in pyproject["tool"]["setuptools"]["package-data"]["router.server"]


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_status_over_http_after_real_traffic_and_never_on_the_client_port(make_router, sim):
    router = make_router(files={"tenants.yaml": TENANTS})
    for path in ("/", "/dashboard", "/v1/router/status"):
        status, _, body = get(router.url + path)
        assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error", path
    status, headers, body = get(router.admin_url + "/v1/router/status")
    assert status == 200 and headers["cache-control"] == "no-store"
    before = json.loads(body)
    assert before["totals"]["requests"] == 0

    a = anthropic.Anthropic(base_url=router.url, api_key=KEY_A, max_retries=0, timeout=20)
    b = anthropic.Anthropic(base_url=router.url, api_key=KEY_B, max_retries=0, timeout=20)
    a.messages.create(model="auto", max_tokens=8, messages=[{"role": "user", "content": "Hi there, how are you?"}])
    a.messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
    sim.faults({"kind": "rate_limit", "model": policy_primary(router, "opus"), "count": 1, "retry_after": 30})
    b.messages.create(model="opus", max_tokens=8, messages=MESSAGES)  # 429 -> falls back to Sonnet
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=router.url, api_key="sk-unknown", max_retries=0).messages.create(
            model="haiku", max_tokens=8, messages=MESSAGES
        )

    s = json.loads(get(router.admin_url + "/v1/router/status")[2])
    assert s["totals"]["requests"] == 4 and s["totals"]["errors"] == 1  # the 401 is a rejected request
    tiers = {t["tier"]: t for t in s["tiers"]}
    assert tiers["opus"]["requests"] == 1 and tiers["none"]["outcomes"] == {"rejected": 1}
    assert s["auto"]["requests"] == 1 and sum(t["auto_requests"] for t in s["tiers"]) == 1
    assert s["fallbacks"]["total"] == 1 and s["fallbacks"]["paths"][0]["reason"] == "rate_limit"
    assert [c["model"] for c in s["fallbacks"]["cooldowns"]] == [policy_primary(router, "opus")]
    assert 25 < s["fallbacks"]["cooldowns"][0]["seconds_left"] <= 30
    assert s["cost"]["spent_usd"] > 0 and s["cost"]["always_opus_usd"] > s["cost"]["serving_usd"]
    assert s["triage"]["classifications"] == 1
    spend = {t["tenant"]: t for t in s["tenants"]}
    assert spend["team-a"]["used_ratio"] > 0 and spend["team-a"]["month_spent_usd"] > 0
    assert spend["team-b"]["spent_since_start_usd"] > 0
    assert s["policy"]["version"] and s["state"]["backend"] == "memory" and s["status"] == "ready"
    doc = json.loads(get(router.admin_url + "/v1/router/openapi.json")[2])
    jsonschema.validate(s, {"$ref": "#/components/schemas/RouterStatus", "components": doc["components"]})
    text = json.dumps(s)
    assert KEY_A not in text and KEY_B not in text and hash_key(KEY_A) not in text  # names only, never keys

    for path in ("/", "/dashboard"):
        status, headers, body = get(router.admin_url + path)
        assert status == 200 and headers["content-type"].startswith("text/html"), path
        assert "script-src 'sha256-" in headers["content-security-policy"]
        assert body == load_page().body


def policy_primary(router, tier: str) -> str:
    return str(load_policy(Path(router.settings.policies_dir)).tiers.tiers[tier].primary)
