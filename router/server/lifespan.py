"""The app's lifespan: build what lives for the process, hand it to the handlers, tear it down in reverse.

Owns construction and teardown order: policy store and its watcher, upstream endpoint (and the embedded
simulator when the router runs without a key), triage, and the ``Services`` container the handlers read
from ``app.state.services``. Nothing here is a module global.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

from router.classify.service import build_triage
from router.gateway.services import Services
from router.policy.loader import Policy, load_policy
from router.policy.store import PolicyStore
from router.policy.tiers import deprecation_dates, deprecation_notices
from router.policy.watch import DirectoryWatcher, install_sighup
from router.server.checks import reload_check
from router.settings import Settings
from router.state.redis_state import RedisState
from router.observability.metrics import Metrics
from router.upstream.endpoint import Upstream, default_transport
from router.upstream.transport import TransportFactory

log = logging.getLogger("router")


def _warn_deprecated(policy: Policy, warned: set[str]) -> None:
    """Warn about deprecated models the tiers list, each once per process (``warned`` remembers them across
    reloads), in the tense today's date calls for."""
    notices = deprecation_notices(policy.tiers, deprecation_dates(), datetime.now(timezone.utc).date())
    for model, text in notices.items():
        if model not in warned:
            warned.add(model)
            log.warning("%s", text)


@asynccontextmanager
async def build_services(settings: Settings, transport: TransportFactory | None = None) -> AsyncIterator[Services]:
    """Build everything the handlers need; tear it down in reverse order."""
    # Every reload runs what start-up runs (and refuses tenants -> open mode): ``router.server.checks``.
    warned: set[str] = set()
    store: PolicyStore[Policy] = PolicyStore(
        load_policy, settings.policies_dir, check=reload_check(settings), on_swap=lambda p: _warn_deprecated(p, warned)
    )

    async def on_change() -> None:
        await store.reload("watch")

    async def on_sighup() -> None:
        await store.reload("sighup")

    # Watch first, so a change that lands while the policy loads is not missed.
    watcher = DirectoryWatcher(settings.policies_dir, on_change, settings.policy_poll_seconds)
    watcher.start()
    remove_sighup: Callable[[], None] = lambda: None  # noqa: E731
    try:
        policy = store.initial_load()
        remove_sighup = install_sighup(asyncio.get_running_loop(), on_sighup)
        async with _upstream_and_triage(settings, store, policy, transport or default_transport(settings)) as services:
            yield services
    finally:
        remove_sighup()
        await watcher.stop()


@asynccontextmanager
async def _upstream_and_triage(
    settings: Settings, store: PolicyStore[Policy], policy: Policy, transport: TransportFactory
) -> AsyncIterator[Services]:
    sim: Any = None
    if settings.embedded_sim:
        from router.sim.config import SimConfig
        from router.sim.server import start_sim

        sim = await start_sim(SimConfig.default(), "127.0.0.1", 0)
        upstream = Upstream(sim.url, settings.upstream_key, transport(sim.url))
        kind = "embedded-sim"
        log.warning(
            "No ANTHROPIC_API_KEY and no upstream URL set: serving from the built-in SIMULATED upstream at %s. "
            "Answers are synthetic. Set ANTHROPIC_API_KEY to route to Anthropic's API.",
            sim.url,
        )
    else:
        upstream = Upstream(settings.upstream_url, settings.upstream_key, transport(settings.upstream_url))
        kind = "anthropic" if settings.upstream_url == "https://api.anthropic.com" else "custom"
        if settings.upstream_key is None:
            log.warning("No ANTHROPIC_API_KEY set: forwarding to %s without an upstream key", settings.upstream_url)
        else:
            log.info("Forwarding to %s", settings.upstream_url)
    try:
        async with build_triage(
            settings, policy.classifier, settings.models_dir, upstream.base_url, simulated=sim is not None
        ) as triage:
            async with _state_backend(settings) as services_for:
                yield await services_for(store, upstream, kind, triage)
    finally:
        await upstream.close()
        if sim is not None:
            await sim.close()


@asynccontextmanager
async def _state_backend(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Services]]]:
    """The state backend (issue 14): Redis when ``state_url`` is set, else memory with the SQLite ledger.
    Yields the ``Services`` builder; on the way out pending state writes finish and the ledger is flushed."""
    shared = None
    if settings.state_url is not None:
        password = settings.state_password.reveal() if settings.state_password is not None else None
        shared = RedisState(settings.state_url.reveal(), settings.state_timeout, password)
    metrics = Metrics(multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)
    built: list[Services] = []

    async def services_for(*args: Any) -> Services:
        services = Services(settings, *args, shared=shared, metrics=metrics)
        built.append(services)
        budgeted = lambda: [n for n, t in services.store.current.tenants.tenants.items() if t.budget]  # noqa: E731
        await services.tenancy.start(budgeted)  # loads the month's spend before the first request
        services.cooldowns.start()  # shared backend: subscribe to cooldown changes
        return services

    try:
        yield services_for
    finally:
        for services in built:
            await services.cooldowns.close()
            await services.tenancy.close()
        if shared is not None:
            await shared.close()
