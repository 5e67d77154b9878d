"""The decision point: a pure function from (request view, tier table, upstream health) to ordered targets.

Same input, same plan. No I/O, no clock reads, no mutation: ``explain`` and policy tests call it directly,
and the dispatcher only executes what it returns. The classifier and the rule engine plug in here later;
until then the rules are the documented defaults below.

What the request's ``model`` field means:

* ``auto`` -- the router decides: with a classification, the tier the classifier policy maps its
  complexity to (rule ``auto-classified``); without one, the table's ``default_tier`` (rule ``auto-default``).
* a tier name (``haiku``, ``sonnet``, ``opus``) -- that tier's primary model, then its fallback tiers
  (rule ``tier-alias``).
* a model id listed by a tier -- exactly that model first, then the tier's fallback tiers
  (rule ``explicit-model``).
* any other model id -- forwarded unchanged to that model, with no fallback (rule ``passthrough``): the
  router will not guess a tier from a name it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from router.classify.schema import Classification
from router.tiers import TierTable
from router.view import RequestView

AUTO = "auto"
PROVIDER = "anthropic"


class Target(msgspec.Struct, frozen=True):
    """Where one attempt goes: a provider and a model id (the tier is for headers and metrics)."""

    model: str
    tier: str | None
    provider: str = PROVIDER


class Plan(msgspec.Struct, frozen=True):
    targets: tuple[Target, ...]
    """Targets to try, in order. Empty when every candidate is cooling down."""
    cooling: tuple[Target, ...]
    """Candidates skipped because they are cooling down after a 429/529."""
    tier: str | None
    rule: str
    reason: str


def _chain(table: TierTable, first_model: str, tier_name: str) -> list[Target]:
    targets = [Target(first_model, tier_name)]
    for other in table.tiers[tier_name].fallback:
        targets.append(Target(table.tiers[other].primary, other))
    return targets


def candidates(
    view: RequestView,
    table: TierTable,
    classification: Classification | None = None,
    complexity_tiers: Mapping[str, str] | None = None,
) -> tuple[list[Target], str | None, str, str]:
    """Ordered candidate targets before health is considered, with tier, rule and reason."""
    requested = view.model
    if requested == AUTO and classification is not None and complexity_tiers:
        tier = complexity_tiers[classification.complexity]
        reason = (
            f"{classification.category}/{classification.complexity} "
            f"({classification.stage}, confidence {classification.confidence:.2f}) -> {tier}"
        )
        return _chain(table, table.tiers[tier].primary, tier), tier, "auto-classified", reason
    if requested == AUTO:
        tier = table.default_tier
        return _chain(table, table.tiers[tier].primary, tier), tier, "auto-default", f"auto -> default tier {tier}"
    if requested in table.tiers:
        return (
            _chain(table, table.tiers[requested].primary, requested),
            requested,
            "tier-alias",
            f"model names tier {requested}",
        )
    tier = table.tier_of_model(requested)
    if tier is not None:
        return _chain(table, requested, tier), tier, "explicit-model", f"{requested} belongs to tier {tier}"
    return [Target(requested, None)], None, "passthrough", f"{requested} is not in the tier table: no fallback"


def plan(
    view: RequestView,
    table: TierTable,
    cooling_until: Mapping[str, float],
    now: float,
    classification: Classification | None = None,
    complexity_tiers: Mapping[str, str] | None = None,
) -> Plan:
    """Order the targets for one request. ``cooling_until`` maps model id -> monotonic time it is usable."""
    targets, tier, rule, reason = candidates(view, table, classification, complexity_tiers)
    ready: list[Target] = []
    cooling: list[Target] = []
    seen: set[str] = set()
    for target in targets:
        if target.model in seen:
            continue
        seen.add(target.model)
        (cooling if cooling_until.get(target.model, 0.0) > now else ready).append(target)
    return Plan(tuple(ready), tuple(cooling), tier, rule, reason)
