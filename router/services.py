"""The objects that live for the process, built once in the app's lifespan and handed to handlers.

Owns construction and teardown order: tier table, upstream session (and the embedded simulator when the
router runs without a key), cooldowns, dispatcher. Handlers read ``app.state.services``; nothing here is a
module global.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from router.classify.service import Triage, build_triage
from router.cooldown import Cooldowns
from router.dispatch import Dispatcher
from router.metrics import Metrics, PolicyCollector, StateCollector
from router.observe import budget_ratios
from router.settings import Settings
from router.sticky import StickyModels
from router.policy.loader import Policy, load_policy
from router.policy.limits import RateLimiter
from router.policy.spend import BudgetLedger
from router.policy.store import PolicyStore
from router.policy.tenants import TenantDirectory
from router.policy.watch import DirectoryWatcher, install_sighup
from router.tiers import deprecated_models, sdk_deprecations
from router.upstream import Upstream

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
        self.limiter = RateLimiter()
        self.ledger = BudgetLedger()
        self.sticky = StickyModels()
        self.draining = False
        self.metrics = Metrics()
        self.metrics.watch(PolicyCollector(store))
        self.metrics.watch(
            StateCollector(
                lambda: self.cooldowns.active(self.clock()),
                lambda: budget_ratios(self.store.current, self.ledger.spent),
            )
        )
        self._directories: dict[str, TenantDirectory] = {}

    def start_draining(self) -> None:
        self.draining = True
        self.metrics.draining.set(1)
        log.warning("SIGTERM: draining; new connections are refused, requests in flight may finish")

    def tenants(self, policy: Policy) -> TenantDirectory:
        """The key -> tenant map of ``policy`` (built once per policy version)."""
        directory = self._directories.get(policy.version)
        if directory is None:
            directory = TenantDirectory(policy.tenants)
            self._directories = {policy.version: directory}  # only the current version is kept
            self.limiter.prune(directory.names())
        return directory


def _warn_deprecated(policy: Policy) -> None:
    tiers = policy.tiers
    for model, date in deprecated_models(tiers, sdk_deprecations()).items():
        primary = any(tier.primary == model for tier in tiers.tiers.values())
        log.warning(
            "tier table lists %s, which Anthropic retires on %s%s",
            model,
            date,
            " -- it is a tier's primary model: move the tier to a newer one" if primary else "",
        )


@asynccontextmanager
async def build_services(settings: Settings) -> AsyncIterator[Services]:
    """Build everything the handlers need; tear it down in reverse order."""
    store: PolicyStore[Policy] = PolicyStore(load_policy, settings.policies_dir)

    async def on_change() -> None:
        result = await store.reload("watch")
        if result.changed:
            _warn_deprecated(store.current)

    # Watch first, so a change that lands while the policy loads is not missed.
    watcher = DirectoryWatcher(settings.policies_dir, on_change, settings.policy_poll_seconds)
    watcher.start()
    remove_sighup: Callable[[], None] = lambda: None  # noqa: E731
    try:
        policy = store.initial_load()
        _warn_deprecated(policy)
        remove_sighup = install_sighup(asyncio.get_running_loop(), lambda: store.reload("sighup"))
        async with _upstream_and_triage(settings, store, policy) as services:
            yield services
    finally:
        remove_sighup()
        await watcher.stop()


@asynccontextmanager
async def _upstream_and_triage(settings: Settings, store: PolicyStore[Policy], policy: Policy) -> AsyncIterator[Services]:
    sim: Any = None
    if settings.embedded_sim:
        from router.sim.config import SimConfig
        from router.sim.server import start_sim

        sim = await start_sim(SimConfig.default(), "127.0.0.1", 0)
        upstream = Upstream.create(settings, sim.url)
        kind = "embedded-sim"
        log.warning(
            "No ANTHROPIC_API_KEY and no upstream URL set: serving from the built-in SIMULATED upstream at %s. "
            "Answers are synthetic. Set ANTHROPIC_API_KEY to route to Anthropic's API.",
            sim.url,
        )
    else:
        upstream = Upstream.create(settings)
        kind = "anthropic" if settings.upstream_url == "https://api.anthropic.com" else "custom"
        if settings.upstream_key is None:
            log.warning("No ANTHROPIC_API_KEY set: forwarding to %s without an upstream key", settings.upstream_url)
        else:
            log.info("Forwarding to %s", settings.upstream_url)
    try:
        async with build_triage(settings, policy.classifier, settings.models_dir, upstream.base_url) as triage:
            yield Services(settings, store, upstream, kind, triage)
    finally:
        await upstream.close()
        if sim is not None:
            await sim.close()
