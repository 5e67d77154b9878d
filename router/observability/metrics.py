"""Prometheus metrics: one injected ``CollectorRegistry`` per app, no global registry.

Owns metric names and label sets. Labels come only from small sets the policy bounds: tier and rule
names, model ids *from the tier table* (anything else is ``other``), tenant names from ``tenants.yaml``,
fixed outcome and error-type vocabularies. Never keys, request ids, raw paths or client strings.
State that already lives elsewhere (cooldowns, budgets, the policy store) is read at scrape time by
collectors, so the request path does no extra bookkeeping for it.

Several workers (``router serve --workers N``): prometheus-client's multiprocess mode (the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` before any worker imports the library), so counters, histograms and the
in-flight gauge are summed over the workers; the collectors' state (policy, cooldowns, budgets, this
worker's process figures) is the answering worker's view, which the shared state backend keeps alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram, ProcessCollector, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30)
LOCAL_CLASSIFIER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
HAIKU_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5)
OTHER = "other"
NONE = "none"

# x-router-attempts outcome -> (status label, error type label)
_LABEL_TYPES = {
    "429": "rate_limit",
    "529": "overloaded",
    "connect": "connect",
    "timeout": "timeout",
    "cut": "cut",
    "stall": "stall",
    "malformed": "malformed",
    "oversize": "oversize",
}


def attempt_labels(outcome: str) -> tuple[str, str]:
    """(status, error_type) of one attempt's outcome as written in ``x-router-attempts``."""
    if outcome.startswith("error_event:"):
        return NONE, "error_event"
    if outcome.isdigit():
        status = int(outcome)
        if status < 400:
            return outcome, NONE
        kind = _LABEL_TYPES.get(outcome) or ("server_error" if status >= 500 else "client_error")
        return outcome, kind
    return NONE, _LABEL_TYPES.get(outcome, "connect")


class PolicyCollector(Collector):
    """Reads the policy store when Prometheus scrapes."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        store = self.store
        info = InfoMetricFamily("router_policy", "The policy version being served.")
        info.add_metric([], {"version": store.version})
        yield info
        reloads = CounterMetricFamily("router_policy_reloads", "Policy reloads after start-up, by result.", labels=["result"])
        reloads.add_metric(["ok"], store.reloads_ok)
        reloads.add_metric(["failed"], store.reloads_failed)
        yield reloads
        last = store.last_result
        healthy = GaugeMetricFamily(
            "router_policy_last_reload_ok", "1 when the last reload succeeded (the policy on disk is the one served)."
        )
        healthy.add_metric([], 1.0 if last is None or last.ok else 0.0)
        yield healthy
        when = GaugeMetricFamily("router_policy_last_reload_timestamp_seconds", "When the last reload ran.")
        when.add_metric([], last.at if last is not None else 0.0)
        yield when


class StateCollector(Collector):
    """Cooldowns and tenant budgets, read from their owners at scrape time."""

    def __init__(self, cooldowns: Callable[[], dict[str, float]], budgets: Callable[[], dict[str, float]]) -> None:
        self.cooldowns = cooldowns
        self.budgets = budgets

    def collect(self) -> Iterator[Any]:
        cooling = GaugeMetricFamily(
            "router_cooldowns_active", "1 for a model skipped after a 429/529 until its retry-after.", labels=["model"]
        )
        for model in self.cooldowns():
            cooling.add_metric([model], 1.0)
        yield cooling
        used = GaugeMetricFamily(
            "router_tenant_budget_used_ratio", "Spend this month / monthly budget, per tenant with a budget.", labels=["tenant"]
        )
        for tenant, ratio in self.budgets().items():
            used.add_metric([tenant], ratio)
        yield used


class Family:
    """A labelled metric whose children are kept: ``prometheus_client``'s ``labels()`` validates and takes a
    lock on every call (~3 us, about ten calls per request); a dict hit is ~0.1 us. Label values are
    bounded by the policy (see above), so the dict is as small as the metric's own child table."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, multiprocess_dir: str | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        """Collectors read at scrape time (and, in one process, every metric)."""
        self._aggregate: CollectorRegistry | None = None
        r: CollectorRegistry | None = self.registry
        if multiprocess_dir is not None:
            # The metrics' values live in the directory's files; the aggregate reads every worker's.
            self._aggregate = CollectorRegistry()
            MultiProcessCollector(self._aggregate, multiprocess_dir)
            r = None
        # The process's own CPU, memory and file descriptors, and the collector's counts per generation,
        # read at scrape time (CPU per request = process CPU / requests, as the benchmark measures it).
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Family(Counter("router_requests_total", "Requests by tier, deciding rule and outcome.", ["tier", "rule", "outcome"], registry=r))
        self.auto_requests = Family(Counter(
            "router_auto_requests_total", "Requests with model auto, by the tier the router chose (counted with router_requests_total).",
            ["tier"], registry=r,
        ))
        self.duration = Family(Histogram(
            "router_request_duration_seconds", "End-to-end request latency.", ["tier", "stream"], buckets=LATENCY_BUCKETS, registry=r
        ))
        self.ttft = Family(Histogram(
            "router_time_to_first_token_seconds", "Streams: time to the first content event.", ["tier"], buckets=TTFT_BUCKETS, registry=r
        ))
        self.attempts = Family(Counter(
            "router_upstream_attempts_total", "Upstream attempts by model, status and error type.", ["model", "status", "error_type"], registry=r
        ))
        self.fallbacks = Family(Counter(
            "router_fallbacks_total", "Moves to the next target, by tiers and the failure that caused it.", ["from_tier", "to_tier", "reason"], registry=r
        ))
        self.exhausted = Family(Counter("router_fallbacks_exhausted_total", "Requests whose every target failed.", ["tier"], registry=r))
        self.tokens = Family(Counter("router_tokens_total", "Serving tokens by model and type.", ["model", "type"], registry=r))
        self.cost = Family(Counter("router_cost_usd_total", "Estimated USD from the policy's prices, serving vs triage.", ["model", "purpose"], registry=r))
        self.triage_tokens = Family(Counter("router_triage_tokens_total", "Tokens of the Haiku triage calls by type.", ["type"], registry=r))
        self.classifications = Family(Counter("router_classifications_total", "Classifications by deciding stage and category.", ["stage", "category"], registry=r))
        self.classifier_duration = Family(Histogram(
            "router_classifier_duration_seconds", "Time to classify a request, by the stage that decided.", ["stage"],
            buckets=LOCAL_CLASSIFIER_BUCKETS + HAIKU_BUCKETS[1:], registry=r,
        ))
        self.haiku_calls = Family(Counter("router_triage_haiku_calls_total", "Haiku triage calls by outcome.", ["outcome"], registry=r))
        self.unlisted_models = Family(Counter(
            "router_unlisted_models_total",
            "Requests naming a model the catalogue does not list but a family's pattern matches (priced by the family).",
            ["family"], registry=r))
        # Issue 15: the rest of the Anthropic API, forwarded as it is. ``family`` is a fixed route family
        # (batches, files, models, other), never the path; ``method`` one of the HTTP methods forwarded.
        self.passthrough = Family(Counter(
            "router_passthrough_requests_total",
            "Requests forwarded as they are (Message Batches, Files, other API paths), by route family, method and outcome.",
            ["family", "method", "outcome"], registry=r,
        ))
        self.batch_requests = Family(Counter(
            "router_batch_requests_total",
            "Requests inside Message Batches created through the router, by the tier the policy sent them to.",
            ["tier"], registry=r,
        ))
        self.tenant_spend = Family(Counter("router_tenant_spend_usd_total", "Estimated USD per tenant.", ["tenant"], registry=r))
        self.in_flight = Gauge(
            "router_requests_in_flight", "Requests being served, streams included.", registry=r, multiprocess_mode="livesum"
        )
        self.draining = Gauge("router_draining", "1 while the router drains after SIGTERM.", registry=r, multiprocess_mode="livemax")
        # The shared state backend (issue 14): degraded = serving from local state because Redis is unreachable.
        self.state_degraded = Gauge(
            "router_state_degraded",
            "1 while the shared state backend is unreachable and local state stands in for it.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.state_errors = Family(Counter(
            "router_state_backend_errors_total", "Failed or timed-out calls to the shared state backend, by operation.",
            ["operation"], registry=r,
        ))

    def watch(self, collector: Collector) -> None:
        self.registry.register(collector)

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """What ``render`` writes, as (sample name, labels, value), without the text round trip (summed over
        workers in multiprocess mode, like ``render``)."""
        for registry in (self._aggregate, self.registry):
            if registry is None:
                continue
            for family in registry.collect():
                for sample in family.samples:
                    yield sample.name, sample.labels, float(sample.value)

    def render(self) -> bytes:
        if self._aggregate is not None:
            return generate_latest(self._aggregate) + generate_latest(self.registry)
        return generate_latest(self.registry)
