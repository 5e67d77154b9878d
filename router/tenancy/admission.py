"""Who is calling and whether they may: tenant from the key, rate limit, budget; and settling both once
the answer's usage is known.

Owns the per-tenant checks around a request. The state (token buckets, the budget ledger) lives on
``Tenancy``; the limits come from the policy version the request started with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from router.errors import AuthenticationFailed
from router.tenancy.limits import rate_limited
from router.policy.loader import Policy
from router.tenancy.spend import EXCEEDED_DOWNGRADE, EXCEEDED_REJECT, budget_exceeded
from router.tenancy.tenants import TenantView
from router.tenancy.state import Tenancy


def client_credential(headers: Iterable[tuple[str, str]]) -> str | None:
    """The client's key from ``x-api-key`` or ``Authorization: Bearer``; None when neither is present."""
    bearer: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == "x-api-key" and value.strip():
            return value.strip()
        if lowered == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return bearer


def tenant_of(headers: Any, state: Tenancy, policy: Policy) -> TenantView:
    """The tenant the key maps to (401 for an unknown key unless the policy is open)."""
    key = client_credential(headers)
    if key is None and not policy.tenants.open_mode:
        raise AuthenticationFailed("missing credentials: send your key in x-api-key or Authorization: Bearer")
    return state.tenants(policy).resolve(key)


def admit(state: Tenancy, who: TenantView, estimated_tokens: int) -> str | None:
    """Rate limit and budget; returns the tier to downgrade to when the budget says so."""
    tenant = who.tenant
    if tenant is None:
        return None
    decision = state.limiter.check(who.name, tenant.rate_limit, estimated_tokens)
    if not decision.admitted:
        raise rate_limited(who.name, decision)
    budget = state.ledger.check(who.name, tenant.budget)
    if budget.status == EXCEEDED_REJECT:
        state.limiter.settle(who.name, tenant.rate_limit, 0, estimated_tokens)
        raise budget_exceeded(who.name, budget)
    return budget.downgrade_tier if budget.status == EXCEEDED_DOWNGRADE else None


def settle(state: Tenancy, who: TenantView, estimated: int, usage: dict[str, int], usd: float) -> None:
    """After the answer: correct the token bucket to what was used and add the cost to the budget."""
    tenant = who.tenant
    if tenant is None:
        return
    state.limiter.settle(who.name, tenant.rate_limit, sum(usage.values()), estimated)
    if usd:
        state.ledger.add(who.name, usd)
