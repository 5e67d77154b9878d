"""What the request handlers share for the life of the process: settings, the policy store, the upstream
endpoint, triage, dispatch state (cooldowns, sticky routes), tenancy state, the state backend and metrics.

Owns the container, and the per-request read and write of routing state: cooldowns from the local
table (with a shared backend, the mirror its subscription keeps current; one read of the shared table per
request only while that subscription is not live), the sticky route from the shared backend when a rule is
sticky; the local tables when there is no shared backend or it is unreachable. ``router.server.lifespan`` builds it and tears it down. Nothing here is a module global:
handlers reach it through the app's state.
"""

from __future__ import annotations

import logging
import os
import time

from router.classify.service import Triage
from router.errors import StateBackendError
from router.gateway.cooldown import Cooldowns
from router.gateway.dispatch import Dispatcher
from router.gateway.plan import Plan
from router.gateway.record import budget_ratios
from router.gateway.sticky import StickyModels
from router.observability.metrics import Metrics, PolicyCollector, StateCollector
from router.policy.loader import Policy
from router.policy.store import PolicyStore
from router.settings import Settings
from router.state.background import Background
from router.state.health import StateHealth
from router.state.redis_state import RedisState, parse_cooldowns
from router.tenancy.batches import BatchBook
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
        shared: RedisState | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.triage = triage
        self.upstream = upstream
        self.upstream_kind = upstream_kind
        """``anthropic``, ``custom`` (an explicit --upstream-url) or ``embedded-sim``."""
        self.metrics = metrics if metrics is not None else Metrics()
        self.shared = shared
        self.health = StateHealth(
            "redis" if shared is not None else "memory",
            on_degraded=lambda on: self.metrics.state_degraded.set(1 if on else 0),
            on_error=lambda operation: self.metrics.state_errors.labels(operation).inc(),
        )
        self.background = Background()
        self.cooldowns = Cooldowns(shared=shared, health=self.health)  # the policy caps each mark (tiers.yaml)
        self.dispatcher = Dispatcher(self.cooldowns)
        self.clock = time.monotonic
        self.tenancy = Tenancy(
            remote=shared,
            health=self.health,
            ledger_file=settings.ledger_path,
            replicas=settings.state_replicas,
            budget_enforcement=settings.budget_enforcement,
            reservation_ttl_s=settings.request_timeout + 60.0,
            background=self.background,
        )
        self.batches = BatchBook.for_tenancy(self.tenancy, settings.ledger_path)
        """Which tenant created which Message Batch, and which batches' cost is booked (issue 15)."""
        self.sticky = StickyModels(ttl=settings.sticky_ttl_seconds)
        self._sticky_ttl_ms = int(settings.sticky_ttl_seconds * 1000)
        self._sticky_version: tuple[str, bool] = ("", False)
        self.draining = False
        self.metrics.watch(PolicyCollector(store))
        self.metrics.watch(
            StateCollector(
                lambda: self.cooldowns.active(self.clock()),
                lambda: budget_ratios(self.store.current, self.tenancy.spent),
            )
        )

    async def routing_state(self, conversation: str | None, now: float) -> tuple[dict[str, float], str | None]:
        """Models cooling at ``now`` -> until, and the conversation's sticky model. Shared backend: the
        cooldowns come from the local mirror of the shared table while its subscription is live (no read),
        else from one read; the sticky route is read only when a rule of the current policy is sticky.
        At most one round trip, none in the common case."""
        if self.shared is not None and self.health.usable:
            if conversation is not None and not self._sticky_rules():
                conversation = None
            mirrored = self.cooldowns.mirrored
            if mirrored and conversation is None:
                return self.cooldowns.active(now), None
            try:
                if mirrored:
                    assert conversation is not None
                    raw, sticky = None, await self.shared.sticky(conversation, self._sticky_ttl_ms)
                else:
                    raw, sticky = await self.shared.routing(conversation, self._sticky_ttl_ms)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
            else:
                if raw is not None:
                    self.cooldowns.replace(parse_cooldowns(raw, time.time()), now)
                if sticky is not None:
                    self.sticky.remember(conversation, sticky)  # the fallback keeps what the fleet knew
                return self.cooldowns.active(now), sticky
        return self.cooldowns.active(now), self.sticky.get(conversation)

    def _sticky_rules(self) -> bool:
        """Whether any rule of the current policy (global or a tenant's) is sticky; cached per version."""
        policy = self.store.current
        if self._sticky_version[0] != policy.version:
            rules = [*policy.rules, *(r for t in policy.tenants.tenants.values() for r in t.rules)]
            self._sticky_version = (policy.version, any(rule.then.sticky for rule in rules))
        return self._sticky_version[1]

    def remember_route(self, conversation: str | None, decision: Plan, answered: str, remembered: str | None) -> None:
        """Keep the conversation on the model that answered, if it was the plan's first choice: a fallback's
        answer (the primary was cooling or failed) must not pin the conversation to the fallback."""
        if conversation is None or decision.cooling or not decision.targets or decision.targets[0].model != answered:
            return
        self.sticky.remember(conversation, answered)
        if self.shared is not None and self.health.usable and remembered != answered:
            self.background.spawn(self._remember_shared(conversation, answered))

    async def _remember_shared(self, conversation: str, model: str) -> None:
        assert self.shared is not None
        try:
            await self.shared.remember(conversation, model, self._sticky_ttl_ms)
        except StateBackendError as exc:
            self.health.failed(exc.operation, exc)

    def state_report(self) -> dict[str, object]:
        """The state backend's health, whether the cooldown mirror is live, and which process answered
        (``--workers``: tells the workers apart)."""
        report = {**self.health.report(), "pid": os.getpid()}
        if self.shared is not None:
            # True while cooldowns come from the subscribed mirror; False: read from Redis per request.
            report["cooldowns_subscribed"] = self.cooldowns.mirrored
        return report

    def start_draining(self) -> None:
        self.draining = True
        self.metrics.draining.set(1)
        log.warning("SIGTERM: draining; new connections are refused, requests in flight may finish")
