"""The status page's numbers: one JSON snapshot computed from the samples ``/metrics`` renders.

Owns the arithmetic behind ``GET /v1/router/status`` (admin listener) and the loading of the page
(``status_page.html``, package data). One source of truth: the Prometheus metrics the router already
keeps. The snapshot is built from the samples ``/metrics`` renders (``Metrics.samples()``: the same
registries' ``collect()``, without the text round trip, which costs several times more), so with
``--workers N`` (prometheus-client's multiprocess mode) the counters are the sum over every worker,
exactly as ``/metrics`` reports them; what lives outside the metrics (the policy store's details, cooldowns with
their time left, the state backend's report) is passed in by the handler.

``status_snapshot`` is a pure function: samples, policy and a few facts in, a plain dict out.

Definitions the page relies on (also in the README's "Status page"):

- *errors*: requests whose outcome is neither ``ok`` nor ``client_closed`` (the client leaving is not the
  router's failure; ``rejected``, ``client_error``, ``upstream_error``, ``stream_error`` and ``shutdown``
  are).
- *estimated savings vs always-Opus*: the serving tokens each priced model answered (input, output,
  cache reads and writes, ``router_tokens_total``), priced at the Opus tier's primary model with
  ``router.policy.pricing.cost_usd`` and the current policy's prices, minus what was spent: the serving
  cost the router estimated at the time (``router_cost_usd_total{purpose="serving"}``) plus the Haiku
  triage calls (``purpose="triage"``), which an always-Opus deployment would not make. Tokens of models
  the tier table cannot price (label ``other``) are left out of both sides and counted apart.
- *Haiku-triage share*: classifications decided by the Haiku stage over all classifications
  (``router_classifications_total``; includes the admin ``/v1/router/classify`` endpoint's). Demo mode's
  simulated Haiku (stage ``haiku-sim``) counts as the Haiku stage and sets ``simulated``, which the page
  says.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from router.policy.loader import Policy
from router.policy.model import ModelInfo
from router.policy.pricing import cost_usd

Sample = tuple[str, Mapping[str, str], float]
"""(sample name, labels, value), as the exposition names them (``router_requests_total``)."""

PAGE_RESOURCE = "status_page.html"
NOT_ERRORS = frozenset({"ok", "client_closed"})
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")
NONE = "none"
OTHER = "other"
SIMULATED_HAIKU = "haiku-sim"
HAIKU_STAGES = frozenset({"haiku", SIMULATED_HAIKU})
"""Stages where Haiku decided; ``haiku-sim`` is the built-in simulator's synthetic answer (demo mode)."""


class StatusPage(msgspec.Struct, frozen=True):
    body: bytes
    csp: str
    """Content-Security-Policy: only the page's own inline script (by hash) runs; it may fetch only from
    the listener that served it; nothing else loads (no CDN, fonts or images from anywhere)."""


def load_page() -> StatusPage:
    """The page's HTML from the package (read once, when the admin app is built) and its CSP."""
    body = resources.files("router.server").joinpath(PAGE_RESOURCE).read_bytes()
    return StatusPage(body, page_csp(body))


def page_csp(html: bytes) -> str:
    scripts = re.findall(rb"<script>(.*?)</script>", html, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts)
    script_src = hashes or "'none'"
    return (
        f"default-src 'none'; script-src {script_src}; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def samples_from_exposition(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition (``/metrics`` of a router, ``Metrics.render()``),
    parsed by prometheus-client: the snapshot of a router scraped from outside."""
    return [(s.name, s.labels, float(s.value)) for family in text_string_to_metric_families(text) for s in family.samples]


class _Samples:
    """Samples grouped by name, for sums over some labels."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.by_name: dict[str, list[tuple[Mapping[str, str], float]]] = {}
        for name, labels, value in samples:
            self.by_name.setdefault(name, []).append((labels, value))

    def rows(self, name: str) -> list[tuple[Mapping[str, str], float]]:
        return self.by_name.get(name, [])

    def total(self, name: str, **match: str) -> float:
        return sum((v for labels, v in self.rows(name) if all(labels.get(k) == want for k, want in match.items())), 0.0)

    def by(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for labels, value in self.rows(name):
            key = tuple(labels.get(k, "") for k in keys)
            out[key] = out.get(key, 0.0) + value
        return out

    def first(self, name: str) -> float | None:
        rows = self.rows(name)
        return rows[0][1] if rows else None


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _count(value: float) -> int | float:
    """Counters of requests are whole numbers; keep them ints in the JSON."""
    return int(value) if value == int(value) else value


def reference_tier(policy: Policy) -> str:
    """The tier "always-Opus" means: the one named ``opus``, else the last (most capable) tier."""
    tiers = policy.tiers.tiers
    return "opus" if "opus" in tiers else list(tiers)[-1]


def price_of(policy: Policy, label: str) -> ModelInfo | None:
    """Prices for a metric's model label: a catalogue entry, or ``family:<name>`` priced as the family says."""
    table = policy.tiers
    if label.startswith("family:"):
        family = table.catalogue.families.get(label.removeprefix("family:"))
        return table.models.get(family.priced_as) if family is not None else None
    return table.models.get(label)


def _costs(s: _Samples, policy: Policy) -> dict[str, Any]:
    ref_model = policy.tiers.tiers[reference_tier(policy)].primary
    ref = policy.tiers.models.get(ref_model)
    tokens: dict[str, dict[str, float]] = {}
    for (model, kind), count in s.by("router_tokens_total", "model", "type").items():
        tokens.setdefault(model, {})[kind] = count
    opus_usd = 0.0
    unpriced = 0.0
    priced_models: set[str] = set()
    for model, kinds in tokens.items():
        if model == OTHER or price_of(policy, model) is None or ref is None:
            unpriced += sum(kinds.values())
            continue
        priced_models.add(model)
        opus_usd += cost_usd(
            ref,
            int(kinds.get("input", 0)),
            int(kinds.get("output", 0)),
            int(kinds.get("cache_read", 0)),
            int(kinds.get("cache_write", 0)),
        )
    serving = sum(
        (v for (model, purpose), v in s.by("router_cost_usd_total", "model", "purpose").items()
         if purpose == "serving" and model in priced_models),
        0.0,
    )
    triage = s.total("router_cost_usd_total", purpose="triage")
    spent = serving + triage
    return {
        "reference_model": ref_model,
        "serving_usd": serving,
        "triage_usd": triage,
        "spent_usd": spent,
        "always_opus_usd": opus_usd,
        "savings_usd": opus_usd - spent,
        "savings_ratio": _ratio(opus_usd - spent, opus_usd),
        "unpriced_tokens": _count(unpriced),
    }


def _tiers(s: _Samples, policy: Policy) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    by_tier_outcome = s.by("router_requests_total", "tier", "outcome")
    auto = {tier: v for (tier,), v in s.by("router_auto_requests_total", "tier").items()}
    auto_total = sum(auto.values())
    names = list(policy.tiers.tiers)
    names += sorted({t for t, _ in by_tier_outcome} - set(names))  # tiers of an older policy, ``none``
    rows = []
    for tier in names:
        outcomes = {o: _count(v) for (t, o), v in sorted(by_tier_outcome.items()) if t == tier}
        requests = sum(outcomes.values())
        errors = sum(v for o, v in outcomes.items() if o not in NOT_ERRORS)
        declared = policy.tiers.tiers.get(tier)
        rows.append({
            "tier": tier,
            "model": declared.primary if declared is not None else None,
            "requests": _count(requests),
            "errors": _count(errors),
            "error_rate": _ratio(errors, requests),
            "outcomes": outcomes,
            "auto_requests": _count(auto.get(tier, 0.0)),
            "auto_share": _ratio(auto.get(tier, 0.0), auto_total),
        })
    auto_report = {
        "measured": "router_auto_requests_total" in s.by_name or bool(auto),
        "requests": _count(auto_total),
        "share_of_all": _ratio(auto_total, sum(by_tier_outcome.values())),
    }
    return rows, auto_report


def _rules(s: _Samples) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for (rule, outcome), v in s.by("router_requests_total", "rule", "outcome").items():
        row = rows.setdefault(rule, {"rule": rule, "requests": 0, "errors": 0})
        row["requests"] += v
        if outcome not in NOT_ERRORS:
            row["errors"] += v
    ordered = sorted(rows.values(), key=lambda r: (-r["requests"], r["rule"]))
    total = sum(r["requests"] for r in ordered)
    return [
        {"rule": r["rule"], "requests": _count(r["requests"]), "errors": _count(r["errors"]), "share": _ratio(r["requests"], total)}
        for r in ordered
    ]


def _fallbacks(s: _Samples, cooling: Mapping[str, float]) -> dict[str, Any]:
    paths = [
        {"from": f, "to": t, "reason": r, "count": _count(v)}
        for (f, t, r), v in sorted(s.by("router_fallbacks_total", "from_tier", "to_tier", "reason").items(), key=lambda kv: -kv[1])
    ]
    reasons: dict[str, float] = {}
    for p in paths:
        reasons[p["reason"]] = reasons.get(p["reason"], 0) + p["count"]
    return {
        "total": _count(s.total("router_fallbacks_total")),
        "exhausted": _count(s.total("router_fallbacks_exhausted_total")),
        "by_reason": {k: _count(v) for k, v in sorted(reasons.items())},
        "paths": paths,
        "cooldowns": [{"model": m, "seconds_left": round(max(left, 0.0), 1)} for m, left in sorted(cooling.items())],
    }


def _triage(s: _Samples, costs: Mapping[str, Any]) -> dict[str, Any]:
    stages = {stage: v for (stage,), v in s.by("router_classifications_total", "stage").items()}
    total = sum(stages.values())
    haiku = sum(v for stage, v in stages.items() if stage in HAIKU_STAGES)
    return {
        "classifications": _count(total),
        "by_stage": {k: _count(v) for k, v in sorted(stages.items())},
        "haiku_share": _ratio(haiku, total),
        "simulated": stages.get(SIMULATED_HAIKU, 0.0) > 0,
        "haiku_calls": {o: _count(v) for (o,), v in sorted(s.by("router_triage_haiku_calls_total", "outcome").items())},
        "spend_usd": costs["triage_usd"],
        "share_of_spend": _ratio(costs["triage_usd"], costs["spent_usd"]),
    }


def _tenants(s: _Samples, policy: Policy) -> list[dict[str, Any]]:
    since_start = {t: v for (t,), v in s.by("router_tenant_spend_usd_total", "tenant").items()}
    ratios = {t: v for (t,), v in s.by("router_tenant_budget_used_ratio", "tenant").items()}
    rows = []
    for name, tenant in sorted(policy.tenants.tenants.items()):  # names from the policy only, never keys
        budget = tenant.budget.monthly_usd if tenant.budget is not None and tenant.budget.monthly_usd > 0 else None
        ratio = ratios.get(name) if budget is not None else None
        rows.append({
            "tenant": name,
            "spent_since_start_usd": since_start.get(name, 0.0),
            "month_spent_usd": ratio * budget if ratio is not None and budget is not None else None,
            "budget_usd": budget,
            "used_ratio": ratio,
            "on_exceeded": tenant.budget.on_exceeded if tenant.budget is not None else None,
        })
    return rows


def status_snapshot(
    samples: Iterable[Sample],
    policy: Policy,
    *,
    now: float,
    policy_details: Mapping[str, Any],
    state: Mapping[str, Any],
    cooling: Mapping[str, float],
    upstream: str,
    draining: bool,
) -> dict[str, Any]:
    """Everything the status page shows. ``now`` is wall-clock seconds (uptime is measured against the
    exposition's ``process_start_time_seconds``); ``cooling`` maps model -> seconds until usable again."""
    s = _Samples(samples)
    tiers, auto = _tiers(s, policy)
    costs = _costs(s, policy)
    requests = sum(t["requests"] for t in tiers)
    errors = sum(t["errors"] for t in tiers)
    started = s.first("process_start_time_seconds")
    return {
        "generated_at": now,
        "uptime_seconds": max(now - started, 0.0) if started else None,
        "status": "draining" if draining else "ready",
        "upstream": upstream,
        "policy": dict(policy_details),
        "state": dict(state),
        "totals": {
            "requests": requests,
            "errors": errors,
            "error_rate": _ratio(errors, requests),
            "in_flight": _count(s.total("router_requests_in_flight")),
        },
        "tiers": tiers,
        "auto": auto,
        "rules": _rules(s),
        "fallbacks": _fallbacks(s, cooling),
        "triage": _triage(s, costs),
        "cost": costs,
        "tenants": _tenants(s, policy),
    }
