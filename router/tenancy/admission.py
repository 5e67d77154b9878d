"""Who is calling and whether they may: tenant from the key, rate limit, budget (reserve the estimated
cost); and settling both once the answer's usage is known.

Owns the per-tenant checks around a request. The state (token buckets, the budget ledger, local or shared)
lives on ``Tenancy``; the limits come from the policy version the request started with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from router.errors import AuthenticationFailed
from router.policy.loader import Policy
from router.tenancy.tenants import TenantView
from router.tenancy.state import Reservation, Tenancy


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


async def admit(
    state: Tenancy, who: TenantView, estimated_tokens: int, policy: Policy, max_tokens: int | None
) -> Reservation | None:
    """Rate limit and budget: consume the buckets and reserve the request's estimated cost, or raise the 429.

    The reservation's ``downgrade`` names the tier to downgrade to when the budget says so."""
    if who.tenant is None:
        return None
    usd = state.estimate_usd(policy, estimated_tokens, max_tokens) if who.tenant.budget is not None else 0.0
    return await state.admit(who, estimated_tokens, usd)


def settle(state: Tenancy, reservation: Reservation | None, usage: dict[str, int], usd: float) -> None:
    """After the answer (or its failure): the real tokens and cost replace what admission reserved."""
    state.settle(reservation, sum(usage.values()), usd)
