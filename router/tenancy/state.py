"""The tenancy state of one process and where it really lives: the key -> tenant directory of the current
policy, the token buckets and the budget ledger -- local (the ``memory`` backend, the ledger persisted to
SQLite) or shared on Redis, with the local ones standing in while Redis is unreachable.

Owns admission against that state (reserve the estimated cost, or refuse) and settlement (the real usage
replaces the reservation), per backend, and what happens when the shared backend fails:

* rate limits: a local bucket of limit / ``replicas`` (the number of processes expected to share it);
* budgets: ``open`` (default) admits against the last shared spend seen plus what this process spent since,
  and hands that spend to Redis when it answers again (nothing is lost); ``strict`` refuses requests of
  budgeted tenants with a 429 until the shared ledger can be checked.

Never a 5xx because of the state backend. Admission awaits one round trip; settling runs after the reply,
so it never delays an answer: settlements go to a bounded queue that one writer task empties, sending
whatever has queued up meanwhile in one pipelined round trip (under load, many settlements per trip; alone,
one). A full queue (Redis slower than the traffic) makes a settlement its own background write rather than
dropping it, and ``close`` (drain) waits for the queue: nothing settled is lost on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import msgspec

from router.errors import RateLimited, StateBackendError
from router.policy.loader import Policy
from router.policy.model import RateLimit
from router.policy.pricing import CACHE_WRITE_FACTOR
from router.state.background import Background
from router.state.health import StateHealth
from router.state.ledger_file import LedgerFile
from router.state.redis_state import RedisState
from router.tenancy.limits import REQUESTS, TOKENS, Decision, RateLimiter, rate_limited
from router.tenancy.spend import (
    EXCEEDED_DOWNGRADE,
    EXCEEDED_REJECT,
    BudgetLedger,
    BudgetState,
    budget_exceeded,
    month_key,
    month_reset,
)
from router.tenancy.tenants import TenantDirectory, TenantView

log = logging.getLogger("router.state")

DEFAULT_MAX_TOKENS = 4096
"""Output tokens reserved for a request that names no ``max_tokens`` (the API will refuse it anyway)."""
FLUSH_SECONDS = 1.0
STRICT = "strict"
SETTLE_BATCH = 128
"""Most settlements sent to Redis in one pipelined round trip."""
SETTLE_QUEUE = 10_000
"""Most settlements waiting for the writer; past it each one is written on its own."""


class Reservation(msgspec.Struct, frozen=True):
    """What admission took from a tenant: settle it exactly once with the real usage."""

    tenant: str
    tokens: int
    usd: float
    tpm: int | None
    downgrade: str | None
    remote: bool
    member: str = ""
    """The reservation's id (Redis: ``id:usd``); empty when nothing was reserved."""
    month: str = ""


class Tenancy:
    def __init__(
        self,
        limiter: RateLimiter | None = None,
        ledger: BudgetLedger | None = None,
        *,
        remote: RedisState | None = None,
        health: StateHealth | None = None,
        ledger_file: Path | None = None,
        replicas: int = 1,
        budget_enforcement: str = "open",
        reservation_ttl_s: float = 660.0,
        background: Background | None = None,
    ) -> None:
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.ledger = ledger if ledger is not None else BudgetLedger()
        """Memory backend: the ledger. Redis backend: spend made while Redis was unreachable, until handed over."""
        self.remote = remote
        self.health = health if health is not None else StateHealth("redis" if remote else "memory")
        self.file = LedgerFile(ledger_file) if ledger_file is not None and remote is None else None
        self.replicas = max(1, replicas)
        self.strict = budget_enforcement == STRICT
        self.reservation_ttl_ms = int(reservation_ttl_s * 1000)
        self.background = background if background is not None else Background()
        self._directories: dict[str, TenantDirectory] = {}
        self._prices: tuple[str, float, float] = ("", 0.0, 0.0)
        self._local_limits: dict[str, RateLimit] = {}
        self._seen: dict[str, float] = {}
        """Redis backend: each tenant's month-to-date spend as Redis last reported it."""
        self._tasks: list[asyncio.Task[None]] = []
        self._budgeted: Callable[[], list[str]] = list
        self._flush_failing = False
        self._settles: deque[tuple[Reservation, int, float]] = deque()
        self._settle_wake = asyncio.Event()
        self._settle_writer: asyncio.Task[None] | None = None
        self._settles_stop = False
        self.settle_trips = 0
        """Round trips the settle writer made (each carries one or more settlements)."""

    # --- policy-derived -------------------------------------------------------------------------------

    def tenants(self, policy: Policy) -> TenantDirectory:
        """The key -> tenant map of ``policy`` (built once per policy version)."""
        directory = self._directories.get(policy.version)
        if directory is None:
            directory = TenantDirectory(policy.tenants)
            self._directories = {policy.version: directory}  # only the current version is kept
            self._local_limits = {}
            self.limiter.prune(directory.names())
        return directory

    def _price(self, policy: Policy) -> tuple[float, float]:
        """USD per input and per output token of the dearest model in the tier table (cached per version).

        The plan is not known at admission, so the reservation assumes the dearest target; settling refunds
        the difference. Input tokens are priced as cache writes when those cost more (they may be)."""
        version, per_in, per_out = self._prices
        if version != policy.version:
            per_in = per_out = 0.0
            for info in policy.tiers.models.values():
                write = info.cache_write if info.cache_write is not None else info.input * CACHE_WRITE_FACTOR
                per_in = max(per_in, info.input, write)
                per_out = max(per_out, info.output)
            per_in, per_out = per_in / 1_000_000, per_out / 1_000_000
            self._prices = (policy.version, per_in, per_out)
        return per_in, per_out

    def estimate_usd(self, policy: Policy, input_tokens: int, max_tokens: int | None) -> float:
        per_in, per_out = self._price(policy)
        return input_tokens * per_in + (DEFAULT_MAX_TOKENS if max_tokens is None else max(0, max_tokens)) * per_out

    def _fallback_limit(self, name: str, limit: RateLimit | None) -> RateLimit | None:
        """The local stand-in for a shared limit: each of ``replicas`` processes gets its share."""
        if limit is None or self.replicas == 1:
            return limit
        scaled = self._local_limits.get(name)
        if scaled is None:
            share = self.replicas
            scaled = self._local_limits[name] = RateLimit(
                None if limit.requests_per_minute is None else max(1, limit.requests_per_minute // share),
                None if limit.tokens_per_minute is None else max(1, limit.tokens_per_minute // share),
            )
        return scaled

    # --- admission and settlement ---------------------------------------------------------------------

    async def admit(self, who: TenantView, tokens: int, usd: float) -> Reservation | None:
        """Consume the rate limits and reserve ``usd`` of the budget, or raise the tenant's 429."""
        tenant = who.tenant
        if tenant is None or (tenant.rate_limit is None and tenant.budget is None):
            return None
        if self.remote is not None and self.health.usable:
            try:
                return await self._admit_remote(who, tokens, usd)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
        return self._admit_local(who, tokens, usd, degraded=self.remote is not None)

    async def _admit_remote(self, who: TenantView, tokens: int, usd: float) -> Reservation:
        assert self.remote is not None and who.tenant is not None
        name, limit, budget = who.name, who.tenant.rate_limit, who.tenant.budget
        rpm = limit.requests_per_minute if limit else None
        tpm = limit.tokens_per_minute if limit else None
        downgrade = budget is not None and budget.on_exceeded == "downgrade" and bool(budget.downgrade_tier)
        month = month_key(time.time())
        reserve = usd if budget is not None else 0.0
        member = f"{secrets.token_hex(8)}:{reserve!r}" if reserve > 0 else ""
        answer = await self.remote.admit(
            name, month, rpm, tpm, tokens, budget.monthly_usd if budget else None, downgrade, reserve, member,
            self.reservation_ttl_ms,
        )
        if answer.code == 1:
            raise rate_limited(name, Decision(False, answer.retry_after_s, REQUESTS if answer.bucket == 1 else TOKENS))
        self._seen[name] = answer.spent
        if answer.code == 2:
            assert budget is not None
            state = BudgetState(EXCEEDED_REJECT, answer.spent, budget.monthly_usd, resets_at=month_reset(time.time()))
            raise budget_exceeded(name, state)
        tier = budget.downgrade_tier if answer.code == 3 and budget is not None else None
        return Reservation(name, tokens, reserve, tpm, tier, True, member, month)

    def _admit_local(self, who: TenantView, tokens: int, usd: float, *, degraded: bool) -> Reservation:
        assert who.tenant is not None
        name, budget = who.name, who.tenant.budget
        limit = self._fallback_limit(name, who.tenant.rate_limit) if degraded else who.tenant.rate_limit
        decision = self.limiter.check(name, limit, tokens)
        if not decision.admitted:
            raise rate_limited(name, decision)
        if degraded and self.strict and budget is not None:
            self.limiter.settle(name, limit, 0, tokens)
            raise RateLimited(
                f"tenant {name!r} has a budget and the shared budget ledger cannot be checked right now "
                "(budget_enforcement: strict); retry shortly",
                headers={"retry-after": "5", "x-should-retry": "true"},
            )
        hold = secrets.token_hex(8) if budget is not None and usd > 0 else ""
        base = self._seen.get(name, 0.0) if degraded else 0.0
        state = self.ledger.reserve(name, budget, usd, base, hold or None, self.reservation_ttl_ms / 1000)
        if state.status == EXCEEDED_REJECT:
            self.limiter.settle(name, limit, 0, tokens)
            raise budget_exceeded(name, state)
        tier = state.downgrade_tier if state.status == EXCEEDED_DOWNGRADE else None
        tpm = limit.tokens_per_minute if limit else None
        return Reservation(name, tokens, usd if budget is not None else 0.0, tpm, tier, False, hold)

    def settle(self, reservation: Reservation | None, tokens: int, usd: float) -> None:
        """The real usage replaces the reservation (shared backend: written after the reply)."""
        if reservation is None:
            return
        if reservation.remote:
            writer = self._settle_writer
            if writer is not None and not writer.done() and len(self._settles) < SETTLE_QUEUE:
                self._settles.append((reservation, tokens, usd))
                self._settle_wake.set()
            else:  # not started (tests, tools) or the queue is full: a write of its own, never dropped
                self.background.spawn(self._settle_remote(reservation, tokens, usd))
            return
        tpm = reservation.tpm
        self.limiter.settle(reservation.tenant, RateLimit(None, tpm) if tpm else None, tokens, reservation.tokens)
        self.ledger.settle(reservation.tenant, reservation.member or None, usd)

    async def _settle_remote(self, r: Reservation, tokens: int, usd: float) -> None:
        assert self.remote is not None
        if self.health.usable:
            try:
                self._seen[r.tenant] = await self.remote.settle(
                    r.tenant, r.month, r.tpm, max(0, tokens) - max(0, r.tokens), r.member, usd
                )
                return
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
        # Kept locally and handed to Redis when it answers again; the reservation there expires by itself.
        self.ledger.add(r.tenant, usd)

    async def _write_settles(self) -> None:
        """The settle writer: whatever queued while the previous round trip was out goes in the next."""
        while True:
            await self._settle_wake.wait()
            self._settle_wake.clear()
            while self._settles and not self._settles_stop:
                batch = [self._settles.popleft() for _ in range(min(len(self._settles), SETTLE_BATCH))]
                try:
                    await self._settle_batch(batch)
                except Exception as exc:  # noqa: BLE001 -- a bug must not stop every later settlement
                    log.error("settlements not written (%s): booked locally", type(exc).__name__)
                    for r, _, usd in batch:
                        self.ledger.add(r.tenant, usd)
            if self._settles_stop:
                return

    async def _settle_batch(self, batch: list[tuple[Reservation, int, float]]) -> None:
        assert self.remote is not None
        if self.health.usable:
            items = [(r.tenant, r.month, r.tpm, max(0, tokens) - max(0, r.tokens), r.member, usd) for r, tokens, usd in batch]
            try:
                spends = await self.remote.settle_many(items)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
            else:
                self.settle_trips += 1
                for (r, _, usd), spent in zip(batch, spends, strict=True):
                    if spent is None:
                        self.ledger.add(r.tenant, usd)  # that script failed: handed over by the reconcile
                    else:
                        self._seen[r.tenant] = spent
                return
        # Kept locally and handed to Redis when it answers again; the reservations there expire by themselves.
        for r, _, usd in batch:
            self.ledger.add(r.tenant, usd)

    async def _drain_settles(self, timeout: float) -> None:
        """Drain: let the writer empty the queue (up to ``timeout``), then stop it once its round trip in
        flight has ended (each is bounded by the client's socket timeout, and cancelling one would leave its
        settlements neither written nor booked). Anything still queued (Redis gone) is booked locally, for
        the hand-over ``close`` attempts next."""
        writer = self._settle_writer
        if writer is None:
            return
        deadline = time.monotonic() + timeout
        while self._settles and not writer.done() and time.monotonic() < deadline:
            self._settle_wake.set()
            await asyncio.sleep(0.005)
        self._settles_stop = True
        self._settle_wake.set()
        await asyncio.wait([writer])
        self._settle_writer = None
        while self._settles:
            r, _, usd = self._settles.popleft()
            self.ledger.add(r.tenant, usd)

    def spent(self, tenant_name: str) -> float:
        """Month-to-date spend as this process knows it (metrics, the budget gauge)."""
        return self._seen.get(tenant_name, 0.0) + self.ledger.spent(tenant_name)

    # --- lifetime -------------------------------------------------------------------------------------

    async def start(self, budgeted: Callable[[], list[str]] = list) -> None:
        """Memory backend: load the month's spend from the SQLite file and flush it every second.
        Redis backend: check the connection, read the ``budgeted`` tenants' spend every second (for the
        budget gauge), and watch for Redis' return while degraded."""
        self._budgeted = budgeted
        if self.file is not None:
            month = self.ledger.month
            self.ledger.load(month, await asyncio.to_thread(self.file.load, month))
            self._tasks.append(asyncio.create_task(self._flush_loop()))
        if self.remote is not None:
            try:
                await self.remote.ping()
                await self._refresh()
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
            self._tasks.append(asyncio.create_task(self._probe_loop()))
            self._settle_writer = asyncio.create_task(self._write_settles())

    async def close(self, drain_seconds: float = 5.0) -> None:
        await self.background.drain(drain_seconds)
        await self._drain_settles(drain_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self.file is not None:
            await self.flush()
        if self.remote is not None and self.health.usable and self.ledger.tenants():
            try:
                await self.remote.reset()
                await self.reconcile()
            except StateBackendError as exc:
                log.error("spend booked during a state backend outage could not be handed over on shutdown: %s", exc)

    async def flush(self) -> None:
        assert self.file is not None
        month, totals = self.ledger.take_dirty()
        if totals:
            try:
                await asyncio.to_thread(self.file.save, month, totals)
            except Exception as exc:  # noqa: BLE001 -- a full disk must not stop the router; say so (once)
                if not self._flush_failing:
                    log.error("could not write the spend ledger to %s: %s (retrying every second)", self.file.path, exc)
                self._flush_failing = True
                self.ledger.mark_dirty(totals)
            else:
                if self._flush_failing:
                    log.warning("spend ledger written to %s again", self.file.path)
                self._flush_failing = False

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def _probe_loop(self) -> None:
        assert self.remote is not None
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if not self.health.degraded:
                try:
                    # Requests admitted while degraded may settle after Redis came back: hand that over too.
                    if self.ledger.tenants():
                        await self.reconcile()
                    await self._refresh()
                except StateBackendError as exc:
                    self.health.failed(exc.operation, exc)
                continue
            try:
                await self.remote.reset()
                await self.remote.ping()
                await self.reconcile()
            except StateBackendError:
                continue
            self.health.recovered()

    async def _refresh(self) -> None:
        assert self.remote is not None
        self._seen.update(await self.remote.spent_many(self._budgeted(), month_key(time.time())))

    async def reconcile(self) -> None:
        """Hand the spend booked locally during an outage to the shared ledger (each tenant once)."""
        assert self.remote is not None
        month = self.ledger.month
        names = self.ledger.tenants()
        for name in names:
            usd = self.ledger.spent(name)
            self._seen[name] = await self.remote.settle(name, month, None, 0, "", usd)
            self.ledger.drop(name, usd)
        if names:
            log.warning("state backend: spend of %d tenant(s) booked during the outage handed over", len(names))
