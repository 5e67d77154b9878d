"""Prometheus metrics: one injected ``CollectorRegistry`` per app, no global registry.

Owns metric names and label sets (small, bounded, from policy: never keys, paths or client strings). Today:
the policy version and reload results, read from the policy store at scrape time. The metrics issue adds
requests, fallbacks, latency, tokens and spend here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PolicyCollector(Collector):
    """Reads the policy store when Prometheus scrapes: no bookkeeping on the request path."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        store = self.store
        info = InfoMetricFamily("router_policy", "The policy version being served.")
        info.add_metric([], {"version": store.version})
        yield info
        reloads = CounterMetricFamily(
            "router_policy_reloads", "Policy reloads after start-up, by result.", labels=["result"]
        )
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


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()

    def watch_policy(self, store: Any) -> None:
        self.registry.register(PolicyCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)
