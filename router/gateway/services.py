"""What the request handlers share for the life of the process: settings, the policy store, the upstream
endpoint, triage, dispatch state (cooldowns, sticky routes), tenancy state and metrics.

Owns the container only; ``router.server.lifespan`` builds it and tears it down. Nothing here is a module
global: handlers reach it through the app's state.
"""

from __future__ import annotations

import logging
import time

from router.classify.service import Triage
from router.gateway.cooldown import Cooldowns
from router.gateway.dispatch import Dispatcher
from router.gateway.record import budget_ratios
from router.gateway.sticky import StickyModels
from router.observability.metrics import Metrics, PolicyCollector, StateCollector
from router.policy.loader import Policy
from router.policy.store import PolicyStore
from router.settings import Settings
from router.tenancy.state import Tenancy
from router.upstream.endpoint import Upstream

log = logging.getLogger("router")


class Services:
    def __init__(
        self,
        settings: Settings,
        store: PolicyStore[Policy],
        upstream: Upstream,
        upstream_kind: str,
        triage: Triage,
    ) -> None:
        self.settings = settings
        self.store = store
        self.triage = triage
        self.upstream = upstream
        self.upstream_kind = upstream_kind
        """``anthropic``, ``custom`` (an explicit --upstream-url) or ``embedded-sim``."""
        self.cooldowns = Cooldowns()
        self.dispatcher = Dispatcher(self.cooldowns)
        self.clock = time.monotonic
        self.tenancy = Tenancy()
        self.sticky = StickyModels()
        self.draining = False
        self.metrics = Metrics()
        self.metrics.watch(PolicyCollector(store))
        self.metrics.watch(
            StateCollector(
                lambda: self.cooldowns.active(self.clock()),
                lambda: budget_ratios(self.store.current, self.tenancy.ledger.spent),
            )
        )

    def start_draining(self) -> None:
        self.draining = True
        self.metrics.draining.set(1)
        log.warning("SIGTERM: draining; new connections are refused, requests in flight may finish")
