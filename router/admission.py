"""Who is calling and whether they may: tenant from the key, rate limit, budget; and settling both once
the answer's usage is known.

Owns the per-tenant checks around a request. The state (token buckets, the budget ledger) lives on
``Services``; the limits come from the policy version the request started with.
"""

from __future__ import annotations

from typing import Any

import msgspec

from router.errors import AuthenticationFailed
from router.headers import client_credential
from router.policy.limits import rate_limited
from router.policy.loader import Policy
from router.policy.spend import EXCEEDED_DOWNGRADE, EXCEEDED_REJECT, budget_exceeded
from router.policy.tenants import TenantView
from router.services import Services


def tenant_of(headers: Any, svc: Services, policy: Policy) -> TenantView:
    """The tenant the key maps to (401 for an unknown key unless the policy is open)."""
    key = client_credential(headers)
    if key is None and not policy.tenants.open_mode:
        raise AuthenticationFailed("missing credentials: send your key in x-api-key or Authorization: Bearer")
    return svc.tenants(policy).resolve(key)


def admit(svc: Services, who: TenantView, estimated_tokens: int) -> str | None:
    """Rate limit and budget; returns the tier to downgrade to when the budget says so."""
    tenant = who.tenant
    if tenant is None:
        return None
    decision = svc.limiter.check(who.name, tenant.rate_limit, estimated_tokens)
    if not decision.admitted:
        raise rate_limited(who.name, decision)
    budget = svc.ledger.check(who.name, tenant.budget)
    if budget.status == EXCEEDED_REJECT:
        svc.limiter.settle(who.name, tenant.rate_limit, 0, estimated_tokens)
        raise budget_exceeded(who.name, budget)
    return budget.downgrade_tier if budget.status == EXCEEDED_DOWNGRADE else None


def settle(svc: Services, who: TenantView, estimated: int, usage: dict[str, int], usd: float) -> None:
    """After the answer: correct the token bucket to what was used and add the cost to the budget."""
    tenant = who.tenant
    if tenant is None:
        return
    svc.limiter.settle(who.name, tenant.rate_limit, sum(usage.values()), estimated)
    if usd:
        svc.ledger.add(who.name, usd)
        svc.metrics.tenant_spend.labels(who.name).inc(usd)


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int | None = 0
    cache_creation_input_tokens: int | None = 0


class _Reply(msgspec.Struct):
    usage: _Usage | None = None


_reply_decoder = msgspec.json.Decoder(_Reply)


def usage_of(body: bytes) -> dict[str, int]:
    """Token usage of a JSON answer; decodes only ``usage`` (msgspec skips the rest)."""
    try:
        usage = _reply_decoder.decode(body).usage
    except msgspec.DecodeError:
        return {}
    if usage is None:
        return {}
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
    }
