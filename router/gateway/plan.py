"""The decision point: a pure function from (request facts, policy, tenant, upstream health) to ordered
targets, the rule that decided and why.

Same input, same plan. No I/O, no clock reads, no mutation: ``explain`` and policy tests call it directly,
and the dispatcher only executes what it returns.

How a rule's ``then.tier`` becomes targets:

* a tier name -- that tier's primary model, then ``then.fallback`` (or the tier's own fallbacks);
* ``by_complexity`` -- the tier ``classifier.yaml`` maps the classified complexity to (the table's
  ``default_tier`` when the request was not classified);
* ``requested`` -- what the client named: a tier name -> that tier; a model the table lists -> exactly that
  model first, then its tier's fallbacks; ``auto`` -> ``by_complexity``; any other model id -> forwarded
  unchanged with no fallback (the router will not guess a tier from a name it does not know).

Then the rule's ``floor`` and ``cap`` and the tenant's allowed tiers remove targets, and models cooling
down after a 429/529 are moved aside -- except a model the client named itself when every other candidate
is cooling too: then it is tried anyway (a cooldown is a guess that the model is still busy; refusing a
request that asked for exactly that model, with nothing else to offer, turns the guess into an outage).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from router.errors import NoAllowedTarget, NotFound
from router.policy.loader import Policy
from router.policy.model import BY_COMPLEXITY, REQUESTED, Action, Tenant
from router.policy.rules import Facts, decide
from router.policy.tiers import TierTable

AUTO = "auto"


class Target(msgspec.Struct, frozen=True):
    """Where one attempt goes: a model id (the tier is for headers and metrics)."""

    model: str
    tier: str | None


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    targets: tuple[Target, ...]
    """Targets to try, in order. Empty when every candidate is cooling down."""
    cooling: tuple[Target, ...]
    """Candidates skipped because they are cooling down after a 429/529."""
    tier: str | None
    rule: str
    """The deciding rule's key: its name, or ``tenant/name`` for a tenant override."""
    origin: str
    """Where the rule is defined, ``file:line``."""
    reason: str
    skipped: tuple[tuple[str, str], ...] = ()
    """Rules tried before the winner and the condition each failed on."""
    action: Action | None = None
    max_retry_wait_seconds: float = 0.0
    auto: bool = False
    """The request named model ``auto`` (the router chose the tier): counted apart for the status page."""


def _chain(table: TierTable, first_model: str, tier: str, fallback: tuple[str, ...] | None) -> list[Target]:
    targets = [Target(first_model, tier)]
    for other in table.tiers[tier].fallback if fallback is None else fallback:
        targets.append(Target(table.tiers[other].primary, other))
    return targets


def _resolve(facts: Facts, policy: Policy, action: Action) -> tuple[list[Target], str]:
    table = policy.tiers
    tier = action.tier
    requested = facts.model
    if tier == REQUESTED and requested != AUTO:
        if requested in table.tiers:
            return _chain(table, table.tiers[requested].primary, requested, action.fallback), f"model names tier {requested}"
        retired = table.catalogue.retirement(requested)
        if retired is not None:
            raise NotFound(retired)
        owner = table.tier_of_model(requested)
        if owner is not None:
            return _chain(table, requested, owner, action.fallback), f"{requested} belongs to tier {owner}"
        return [Target(requested, None)], f"{requested} is not in the tier table: forwarded as named, no fallback"
    if tier in (REQUESTED, BY_COMPLEXITY):
        c = facts.classification
        if c is None:
            tier = table.default_tier
            why = f"not classified -> default tier {tier}"
        else:
            tier = policy.classifier.complexity_tiers[c.complexity]
            why = f"{c.category}/{c.complexity} ({c.stage}, confidence {c.confidence:.2f}) -> {tier}"
        return _chain(table, table.tiers[tier].primary, tier, action.fallback), why
    return _chain(table, table.tiers[tier].primary, tier, action.fallback), f"rule sends to tier {tier}"


def _allowed(target: Target, table: TierTable, action: Action, tenant: Tenant | None) -> bool:
    if target.tier is None:
        # A model outside the table has no rank: only unrestricted rules and tenants may reach it.
        return action.floor is None and action.cap is None and not (tenant and tenant.allowed_tiers)
    rank = table.rank(target.tier)
    if action.floor is not None and rank < table.rank(action.floor):
        return False
    if action.cap is not None and rank > table.rank(action.cap):
        return False
    return not (tenant and tenant.allowed_tiers and target.tier not in tenant.allowed_tiers)


def plan(
    facts: Facts,
    policy: Policy,
    cooling_until: Mapping[str, float],
    now: float,
    tenant: Tenant | None = None,
    budget_tier: str | None = None,
    sticky_model: str | None = None,
) -> Plan:
    """Order the targets for one request. ``cooling_until`` maps model id -> monotonic time it is usable.
    ``budget_tier``: the tenant is over budget with ``downgrade``; nothing above this tier may answer.
    ``sticky_model``: the model that answered this conversation before; a sticky rule tries it first."""
    verdict = decide(policy.rules, facts, tenant.rules if tenant else ())
    action = verdict.rule.then
    table = policy.tiers
    candidates, reason = _resolve(facts, policy, action)
    if budget_tier is not None:
        # Over budget: nothing above budget_tier, but never looser than the rule's own cap; the rule's
        # floor stays unless the budget tier is below it.
        cap = budget_tier
        if action.cap is not None and table.rank(action.cap) < table.rank(budget_tier):
            cap = action.cap
        floor = action.floor
        if floor is not None and table.rank(floor) > table.rank(cap):
            floor = None
        action = msgspec.structs.replace(action, cap=cap, floor=floor)
        reason += f"; monthly budget exceeded: capped at {cap}"
    allowed = [t for t in candidates if _allowed(t, table, action, tenant)]
    removed = [t.tier or t.model for t in candidates if t not in allowed]
    if removed:
        reason += "; out of bounds (floor, cap or tenant): " + ", ".join(removed)
    if not allowed:
        # The preferred tiers are all out of bounds: answer from the nearest tier the bounds allow.
        for tier in (action.floor, action.cap):
            if tier is not None and _allowed(Target(table.tiers[tier].primary, tier), table, action, tenant):
                allowed = _chain(table, table.tiers[tier].primary, tier, ())
                reason += f"; bounds moved it to {tier}"
                break
    if not allowed:
        raise NoAllowedTarget(
            f"rule {verdict.key!r} and the tenant's allowed tiers leave no tier for this request"
        )
    if action.sticky and sticky_model is not None:
        kept = next((t for t in allowed if t.model == sticky_model), None)
        if kept is not None and kept is not allowed[0]:
            allowed = [kept, *(t for t in allowed if t is not kept)]
            reason += f"; sticky: conversation stays on {sticky_model}"
    ready: list[Target] = []
    cooling: list[Target] = []
    seen: set[str] = set()
    for target in allowed:
        if target.model in seen:
            continue
        seen.add(target.model)
        (cooling if cooling_until.get(target.model, 0.0) > now else ready).append(target)
    if not ready:
        named = next((t for t in cooling if t.model == facts.model), None)
        if named is not None:
            ready.append(named)
            cooling.remove(named)
            reason += f"; {named.model} is cooling down but was named and nothing else is ready: tried anyway"
    wait = action.max_retry_wait_seconds
    return Plan(
        targets=tuple(ready),
        cooling=tuple(cooling),
        tier=allowed[0].tier,
        rule=verdict.key,
        origin=policy.origins.get(verdict.key, "<built-in>"),
        reason=reason,
        skipped=verdict.skipped,
        action=action,
        max_retry_wait_seconds=table.max_retry_wait_seconds if wait is None else wait,
        auto=facts.model == AUTO,
    )
