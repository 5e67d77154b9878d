"""Tenant enforcement: key hashing and resolution, allowed tiers, the bind guard, rate limits and budgets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.errors import AuthenticationFailed, ClientFacingError, ConfigError
from router.tenancy.limits import RateLimiter, rate_limited
from router.policy.model import Budget, ModelInfo, RateLimit, Tenant, TenantsFile
from router.tenancy.spend import (
    EXCEEDED_DOWNGRADE,
    EXCEEDED_REJECT,
    OK,
    budget_exceeded,
    BudgetLedger,
    month_reset,
)
from router.policy.pricing import cost_usd
from router.policy.keys import hash_key, hash_key_command, is_key_hash
from router.tenancy.tenants import (
    ANONYMOUS,
    TenantDirectory,
    check_bind,
)

ACME_KEY = "sk-router-acme-0123456789abcdef"
BETA_KEY = "sk-router-beta-fedcba9876543210"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tenants_file(open_mode: bool = False) -> TenantsFile:
    return TenantsFile(
        tenants={
            "acme": Tenant(keys=(hash_key(ACME_KEY),), allowed_tiers=("haiku", "sonnet")),
            "beta": Tenant(keys=(hash_key("other-key-not-presented-000"), hash_key(BETA_KEY))),
        },
        open_mode=open_mode,
    )


# --- keys and the directory ---------------------------------------------------------------------------


def test_hash_key_format():
    hashed = hash_key("abc")
    assert hashed == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert is_key_hash(hashed)
    assert not is_key_hash(hashed.upper().replace("SHA256", "sha256"))
    assert not is_key_hash(hashed[:-1])
    assert not is_key_hash("md5:" + "0" * 64)
    assert not is_key_hash("abc")


def test_hash_key_command_strips_and_refuses_short_keys():
    assert hash_key_command(f"  {ACME_KEY}\n") == hash_key(ACME_KEY)
    with pytest.raises(ConfigError) as info:
        hash_key_command("demo")
    assert "demo" not in str(info.value)


def test_directory_resolves_known_keys():
    directory = TenantDirectory(tenants_file())
    acme = directory.resolve(ACME_KEY)
    assert acme.name == "acme" and acme.tenant is not None
    assert directory.resolve(BETA_KEY).name == "beta"
    assert directory.names() == {"acme", "beta"}


@pytest.mark.parametrize("presented", ["sk-router-wrong-key-1234567890", ACME_KEY + "x", "", None])
def test_unknown_or_missing_key_is_401_without_key_material(presented):
    directory = TenantDirectory(tenants_file())
    with pytest.raises(AuthenticationFailed) as info:
        directory.resolve(presented)
    assert info.value.status == 401 and info.value.error_type == "authentication_error"
    message = str(info.value)
    for secret in (ACME_KEY, BETA_KEY, hash_key(ACME_KEY)[7:], presented or "\0"):
        assert secret not in message


def test_open_mode_admits_unknown_keys_as_anonymous_but_still_knows_tenants():
    directory = TenantDirectory(tenants_file(open_mode=True))
    assert directory.resolve("sk-unknown-anything").name == ANONYMOUS
    assert directory.resolve(None).tenant is None
    assert directory.resolve(ACME_KEY).name == "acme"


def test_no_tenants_means_the_local_demo_accepts_any_key():
    directory = TenantDirectory(TenantsFile())
    assert directory.resolve("demo").name == ANONYMOUS


def test_directory_rejects_malformed_and_shared_hashes_without_echoing_them():
    bad = "sha256:" + "A" * 64
    with pytest.raises(ConfigError) as info:
        TenantDirectory(TenantsFile(tenants={"acme": Tenant(keys=(bad,))}))
    assert "'acme' key #1" in str(info.value) and bad not in str(info.value)
    shared = hash_key(ACME_KEY)
    with pytest.raises(ConfigError, match="share a key") as info:
        TenantDirectory(TenantsFile(tenants={"a": Tenant(keys=(shared,)), "b": Tenant(keys=(shared,))}))
    assert shared not in str(info.value)


LOOPBACK = ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_without_tenants_is_allowed(host):
    check_bind(host, TenantsFile())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "router.internal", ""])
def test_network_bind_without_tenants_is_refused_with_the_fix(host):
    with pytest.raises(ConfigError) as info:
        check_bind(host, TenantsFile())
    assert "tenants.yaml" in str(info.value) and "open_mode: true" in str(info.value)
    check_bind(host, TenantsFile(open_mode=True))
    check_bind(host, tenants_file())


# --- rate limits --------------------------------------------------------------------------------------


def test_requests_per_minute_admits_up_to_the_limit_then_refuses_with_retry_after():
    clock = FakeClock()
    limiter, limit = RateLimiter(clock), RateLimit(requests_per_minute=6)
    assert all(limiter.check("acme", limit, 0).admitted for _ in range(6))
    refused = limiter.check("acme", limit, 0)
    assert not refused.admitted and refused.limit == "requests"
    assert refused.retry_after_s == pytest.approx(10.0)  # one request refills in 60 / 6 s
    clock.now += 9.9
    assert not limiter.check("acme", limit, 0).admitted
    clock.now += 0.1
    assert limiter.check("acme", limit, 0).admitted
    assert limiter.check("beta", limit, 0).admitted  # buckets are per tenant


def test_refill_is_continuous_and_capped_at_one_minute():
    clock = FakeClock()
    limiter, limit = RateLimiter(clock), RateLimit(requests_per_minute=60)
    for _ in range(60):
        limiter.check("acme", limit, 0)
    clock.now += 3600  # an idle hour still leaves only one minute's burst
    assert sum(limiter.check("acme", limit, 0).admitted for _ in range(100)) == 60


def test_tokens_per_minute_and_refused_requests_do_not_consume():
    clock = FakeClock()
    limiter, limit = RateLimiter(clock), RateLimit(requests_per_minute=100, tokens_per_minute=6000)
    assert limiter.check("acme", limit, 5000).admitted
    refused = limiter.check("acme", limit, 3000)
    assert not refused.admitted and refused.limit == "tokens"
    assert refused.retry_after_s == pytest.approx(20.0)  # 2000 missing at 100 tokens/s
    # The refusals consumed neither tokens nor requests: a smaller request still fits right away.
    for _ in range(5):
        assert not limiter.check("acme", limit, 3000).admitted
    assert limiter.check("acme", limit, 1000).admitted
    clock.now += 30
    assert limiter.check("acme", limit, 3000).admitted


def test_request_larger_than_the_burst_waits_for_a_full_bucket_instead_of_starving():
    clock = FakeClock()
    limiter, limit = RateLimiter(clock), RateLimit(tokens_per_minute=1000)
    assert limiter.check("acme", limit, 5000).admitted
    refused = limiter.check("acme", limit, 10)
    assert refused.retry_after_s == pytest.approx(4010 * 60 / 1000)  # 4000 in debt, then 10 tokens


def test_settle_charges_or_refunds_the_difference():
    clock = FakeClock()
    limiter, limit = RateLimiter(clock), RateLimit(tokens_per_minute=6000)
    assert limiter.check("acme", limit, 1000).admitted
    limiter.settle("acme", limit, actual_tokens=7000, estimated_tokens=1000)  # level -1000
    refused = limiter.check("acme", limit, 100)
    assert not refused.admitted and refused.retry_after_s == pytest.approx(11.0)
    clock.now += 11
    assert limiter.check("acme", limit, 100).admitted
    limiter.settle("acme", limit, actual_tokens=0, estimated_tokens=100_000)  # refund caps at the burst
    assert limiter.check("acme", limit, 6000).admitted
    assert not limiter.check("acme", limit, 1).admitted


def test_no_limit_always_admits_and_prune_forgets_tenants():
    clock = FakeClock()
    limiter, limit = RateLimiter(clock), RateLimit(requests_per_minute=1)
    assert limiter.check("anonymous", None, 10**9).admitted
    assert limiter.check("acme", RateLimit(), 10**9).admitted
    assert limiter.check("acme", limit, 0).admitted and not limiter.check("acme", limit, 0).admitted
    limiter.prune({"beta"})
    assert limiter.check("acme", limit, 0).admitted


@pytest.mark.parametrize(("wait", "header"), [(0.2, "1"), (1.0, "1"), (10.01, "11")])
def test_rate_limited_error(wait, header):
    clock = FakeClock()
    limiter, limit = RateLimiter(clock), RateLimit(requests_per_minute=1)
    limiter.check("acme", limit, 0)
    clock.now += 60 - wait
    error = rate_limited("acme", limiter.check("acme", limit, 0))
    assert isinstance(error, ClientFacingError)
    assert error.status == 429 and error.error_type == "rate_limit_error"
    assert error.headers == {"retry-after": header, "x-should-retry": "true"}
    assert "acme" in error.message


# --- spend and budgets --------------------------------------------------------------------------------

SONNET = ModelInfo(input=3.0, output=15.0)


def test_cost_formula_with_cache_tokens():
    assert cost_usd(SONNET, 1_000_000, 0) == pytest.approx(3.0)
    assert cost_usd(SONNET, 0, 1_000_000) == pytest.approx(15.0)
    # 2000 input, 500 output, 10k cache reads at 0.30/M, 4k cache writes at 3.75/M
    expected = (2000 * 3 + 500 * 15 + 10_000 * 0.3 + 4000 * 3.75) / 1e6
    assert cost_usd(SONNET, 2000, 500, 10_000, 4000) == pytest.approx(expected)
    priced = ModelInfo(input=3.0, output=15.0, cache_read=1.0, cache_write=2.0)
    assert cost_usd(priced, 0, 0, 1_000_000, 1_000_000) == pytest.approx(3.0)


def at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_ledger_rolls_over_at_the_utc_month_start():
    clock = FakeClock(at(2026, 12, 31, 23, 59))
    ledger = BudgetLedger(clock)
    ledger.add("acme", 12.5)
    ledger.add("acme", 0.5)
    ledger.add("beta", 1.0)
    assert ledger.spent("acme") == pytest.approx(13.0)
    clock.now = at(2026, 12, 31, 23, 59, 59)
    assert ledger.spent("acme") == pytest.approx(13.0)
    clock.now = at(2027, 1, 1)
    assert ledger.spent("acme") == 0.0 and ledger.spent("beta") == 0.0
    assert month_reset(at(2026, 12, 31, 23, 59)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert month_reset(at(2027, 1, 15)) == datetime(2027, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        ledger.add("acme", -1.0)


def test_budget_states():
    ledger = BudgetLedger(FakeClock(at(2027, 3, 10)))
    reject = Budget(monthly_usd=10.0)
    downgrade = Budget(monthly_usd=10.0, on_exceeded="downgrade", downgrade_tier="haiku")
    ledger.add("acme", 9.99)
    assert ledger.check("acme", reject).status == OK
    assert ledger.check("acme", None).status == OK
    ledger.add("acme", 0.01)
    assert ledger.check("acme", reject).status == EXCEEDED_REJECT
    state = ledger.check("acme", downgrade)
    assert state.status == EXCEEDED_DOWNGRADE and state.downgrade_tier == "haiku"
    # A downgrade without a tier fails closed.
    assert ledger.check("acme", Budget(monthly_usd=10.0, on_exceeded="downgrade")).status == EXCEEDED_REJECT


def test_budget_exceeded_error():
    now = at(2027, 3, 10)
    ledger = BudgetLedger(FakeClock(now))
    ledger.add("acme", 10.5)
    error = budget_exceeded("acme", ledger.check("acme", Budget(monthly_usd=10.0)))
    assert error.status == 429 and error.error_type == "rate_limit_error"
    assert error.headers == {"x-should-retry": "false", "x-router-budget-reset": "2027-04-01T00:00:00Z"}
    assert "'acme'" in error.message and "$10.00" in error.message and "monthly budget" in error.message


def test_budget_exceeded_error_keeps_small_amounts():
    # A $0.001 budget and $0.0012 spent read "$0.00" of "$0.00" before (issue 13, defect 19).
    ledger = BudgetLedger(FakeClock(at(2027, 3, 10)))
    ledger.add("acme", 0.0012)
    message = budget_exceeded("acme", ledger.check("acme", Budget(monthly_usd=0.001))).message
    assert "$0.001 " in message and "$0.0012 spent" in message and "$0.00 " not in message


def test_reservations_count_against_the_budget_until_settled_or_expired():
    clock = FakeClock(at(2027, 3, 10))
    ledger = BudgetLedger(clock)
    budget = Budget(monthly_usd=1.0)
    assert ledger.reserve("acme", budget, 0.6, hold="a").status == OK
    assert ledger.reserve("acme", budget, 0.6, hold="b", ttl=30).status == OK  # 0.6 < 1.0: room left
    assert ledger.reserve("acme", budget, 0.6, hold="c").status == EXCEEDED_REJECT  # 1.2 reserved: no room
    assert ledger.reserved("acme") == pytest.approx(1.2)
    ledger.settle("acme", "a", 0.1)  # the real cost replaces the reservation
    assert ledger.spent("acme") == pytest.approx(0.1) and ledger.reserved("acme") == pytest.approx(0.6)
    clock.now += 31  # "b" was never settled: it expires rather than holding the budget all month
    assert ledger.reserved("acme") == 0.0
    assert ledger.reserve("acme", budget, 0.6, hold="d").status == OK
    month, dirty = ledger.take_dirty()
    assert month == "2027-03" and dirty == {"acme": pytest.approx(0.1)}
    assert ledger.take_dirty()[1] == {}
