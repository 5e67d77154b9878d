"""Per-model cooldowns: after a 429/529, later requests skip that model until its retry-after passes.

One instance lives for the process (built in the app's lifespan). It only records and answers; the
decision to skip is made by ``plan`` from a snapshot. Rules it owns:

* a cooldown never lasts longer than ``max_seconds`` (the dispatcher also applies the policy's
  ``max_cooldown_seconds`` from ``tiers.yaml``), however large the
  upstream's ``retry-after`` -- one 429 saying 86400 must not take a model away for a day;
* a success clears a cooldown only if its attempt *started after* the cooldown's latest mark: an answer to
  a request sent before another request's 429 says nothing about the model's state since (marks are
  time-stamped, and a later mark moves the stamp forward);
* with a shared backend (Redis) every mark is written there at once, and the write publishes the change
  before it returns (so before the replica that saw the 429 answers anyone). Every replica is subscribed
  (``start``) and applies each change to its local table the moment the bytes arrive, so a cooldown learnt
  by one replica holds on all of them on their very next request without any per-request read. While the
  subscription is not live (starting, reconnecting) ``mirrored`` is False and callers read the shared
  table per request instead (``replace``), as they do when Redis is unreachable -- then the local table
  is what serves.

Times in the local table are the process's monotonic clock; the shared table uses wall-clock time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from router.errors import StateBackendError
from router.state.health import StateHealth
from router.state.redis_state import RedisState, RemoteCooling, parse_change, parse_cooldowns
from router.state.subscriber import Subscription

MAX_COOLDOWN_SECONDS = 300.0


class Cooling(msgspec.Struct, frozen=True):
    until: float
    status: int
    marked: float = 0.0
    """When the latest 429/529 for the model was seen (the clock ``mark`` was given)."""


class Cooldowns:
    """Model id -> when it may be tried again (monotonic clock) and the status that put it there."""

    def __init__(
        self,
        max_seconds: float = MAX_COOLDOWN_SECONDS,
        shared: RedisState | None = None,
        health: StateHealth | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_seconds = max_seconds
        self.shared = shared
        self.health = health
        self._wall = wall
        self._clock = clock
        self._by_model: dict[str, Cooling] = {}
        self._subscription: Subscription | None = None
        self._during_resync: list[str] | None = None

    # --- the shared table's mirror --------------------------------------------------------------------

    @property
    def mirrored(self) -> bool:
        """Whether the local table is the shared one (subscribed, re-read since, Redis answering)."""
        sub = self._subscription
        return sub is not None and sub.live and self.health is not None and self.health.usable

    def start(self) -> None:
        """With a shared backend: subscribe to its changes (in the background; until the subscription is
        live, ``mirrored`` is False)."""
        if self.shared is not None and self._subscription is None:
            self._subscription = self.shared.subscribe(self._changed, self._resync)
            self._subscription.start()

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    def _changed(self, payload: str) -> None:
        """One published change, applied as it arrives (see ``router.state.subscriber``)."""
        if self._during_resync is not None:
            self._during_resync.append(payload)
        model, cooling = parse_change(payload, self._wall())
        if cooling is None:
            self._by_model.pop(model, None)
            return
        offset = self._clock() - self._wall()
        self._by_model[model] = Cooling(cooling.until + offset, cooling.status, cooling.marked + offset)

    async def _resync(self) -> None:
        assert self.shared is not None
        # A change that arrives while the read is in flight may be newer or older than what the read
        # returns: apply the read, then every change seen meanwhile again, in order (each is the model's
        # entry as it stood after that change, so the last one wins either way).
        self._during_resync = []
        try:
            raw = await self.shared.cooldowns()
            self.replace(parse_cooldowns(raw, self._wall()), self._clock())
            seen, self._during_resync = self._during_resync, None
            for payload in seen:
                self._changed(payload)
        finally:
            self._during_resync = None

    # --- marks --------------------------------------------------------------------------------------------

    def _mark_local(self, model: str, until: float, status: int, now: float) -> None:
        current = self._by_model.get(model)
        if current is None:
            self._by_model[model] = Cooling(until, status, now)
        elif current.until < until:
            self._by_model[model] = Cooling(until, status, max(now, current.marked))
        else:
            self._by_model[model] = Cooling(current.until, current.status, max(now, current.marked))

    async def mark(self, model: str, seconds: float, status: int, now: float) -> None:
        seconds = min(max(seconds, 0.0), self.max_seconds)
        self._mark_local(model, now + seconds, status, now)
        if self.shared is not None and self.health is not None and self.health.usable:
            wall = self._wall()
            try:
                await self.shared.mark(model, wall + seconds, wall, status, wall)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)

    async def clear(self, model: str, started: float) -> None:
        """A success of an attempt that started at ``started`` (same clock as ``mark``'s ``now``)."""
        current = self._by_model.get(model)
        if current is None or current.marked >= started:
            return
        del self._by_model[model]
        if self.shared is not None and self.health is not None and self.health.usable:
            # The attempt's start in wall-clock time, for comparison with other replicas' marks.
            started_wall = self._wall() - (time.monotonic() - started) if started > 0 else self._wall()
            try:
                await self.shared.clear(model, started_wall)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)

    def replace(self, shared: dict[str, RemoteCooling], now: float) -> None:
        """Take the shared table as this process's (``now`` monotonic), converting its wall-clock times."""
        if not shared and not self._by_model:
            return
        offset = now - self._wall()
        self._by_model = {
            model: Cooling(c.until + offset, c.status, c.marked + offset) for model, c in shared.items()
        }

    def active(self, now: float) -> dict[str, float]:
        """Models still cooling at ``now`` -> until. Expired entries are dropped as a side effect."""
        if not self._by_model:
            return {}
        expired = [m for m, c in self._by_model.items() if c.until <= now]
        for model in expired:
            del self._by_model[model]
        return {m: c.until for m, c in self._by_model.items()}

    def get(self, model: str) -> Cooling | None:
        return self._by_model.get(model)
