"""Recording what happened to a request into the metrics: attempts, fallbacks, outcome, tokens, spend,
triage. Called by the handlers at the end of a request (or of a stream), never in between.

Owns the mapping from routing results to metric labels; ``metrics`` owns the metric definitions.
"""

from __future__ import annotations

from typing import Any

from router.classify.cascade import CascadeResult
from router.observability.metrics import NONE, OTHER, Metrics, attempt_labels
from router.gateway.plan import Plan
from router.policy.loader import Policy
from router.policy.pricing import cost_usd

USAGE_TYPES = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation_input_tokens": "cache_write",
}


def model_label(policy: Policy, model: str | None) -> str:
    """A model id the tier table knows, else ``other``: client strings never become label values."""
    return policy.tiers.catalogue.label(model) or OTHER


def record_attempts(metrics: Metrics, policy: Policy, plan: Plan, attempts: list[tuple[str, str]], succeeded: bool) -> None:
    tiers = {t.model: t.tier for t in (*plan.targets, *plan.cooling)}
    previous: tuple[str, str] | None = None
    for model, outcome in attempts:
        status, error_type = attempt_labels(outcome)
        metrics.attempts.labels(model_label(policy, model), status, error_type).inc()
        tier = tiers.get(model) or NONE
        if previous is not None:
            metrics.fallbacks.labels(previous[0], tier, previous[1]).inc()
        previous = (tier, error_type) if error_type != NONE else None
    if attempts and not succeeded:
        metrics.exhausted.labels(plan.tier or NONE).inc()


def record_request(metrics: Metrics, plan: Plan | None, outcome: str, seconds: float, stream: bool) -> None:
    tier = (plan.tier if plan else None) or NONE
    metrics.requests.labels(tier, plan.rule if plan else NONE, outcome).inc()
    if plan is not None and plan.auto:
        metrics.auto_requests.labels(tier).inc()
    metrics.duration.labels(tier, "true" if stream else "false").observe(seconds)


def record_usage(metrics: Metrics, policy: Policy, model: str | None, usage: dict[str, int]) -> float:
    """Serving tokens and their estimated cost; returns the cost (0 for a model without prices)."""
    label = model_label(policy, model)
    for key, kind in USAGE_TYPES.items():
        count = usage.get(key, 0)
        if count:
            metrics.tokens.labels(label, kind).inc(count)
    info = policy.tiers.models.get(model or "")
    if info is None:
        return 0.0
    usd = cost_usd(
        info,
        usage.get("input_tokens", 0),
        usage.get("output_tokens", 0),
        usage.get("cache_read_input_tokens", 0),
        usage.get("cache_creation_input_tokens", 0),
    )
    metrics.cost.labels(label, "serving").inc(usd)
    return usd


def record_triage(metrics: Metrics, policy: Policy, result: CascadeResult, seconds: float, haiku_model: str) -> None:
    c = result.classification
    metrics.classifications.labels(c.stage, c.category).inc()
    haiku = result.haiku
    metrics.classifier_duration.labels("local" if haiku is None else "haiku").observe(seconds)
    if haiku is None:
        return
    metrics.haiku_calls.labels(haiku.outcome).inc()
    for attr, kind in (
        ("input_tokens", "input"),
        ("output_tokens", "output"),
        ("cache_read_tokens", "cache_read"),
        ("cache_write_tokens", "cache_write"),
    ):
        count = getattr(haiku, attr, 0)
        if count:
            metrics.triage_tokens.labels(kind).inc(count)
    if haiku.usd:
        metrics.cost.labels(model_label(policy, haiku_model), "triage").inc(haiku.usd)


def budget_ratios(policy: Policy, spent: Any) -> dict[str, float]:
    """Spend / monthly budget for tenants that have one (``spent`` is the ledger's ``spent``)."""
    ratios: dict[str, float] = {}
    for name, tenant in policy.tenants.tenants.items():
        if tenant.budget is not None and tenant.budget.monthly_usd > 0:
            ratios[name] = spent(name) / tenant.budget.monthly_usd
    return ratios
