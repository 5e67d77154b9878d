"""Per-tenant rate limits: token buckets for requests per minute and tokens per minute.

Owns the bucket state of one router process (a ``RateLimiter`` instance built in the app's lifespan) and
``rate_limited``, the 429 a refused request gets. Each bucket holds at most one minute's allowance (the
burst) and refills continuously at allowance / 60 per second. Tokens are all tokens a request costs:
input (including cache reads and writes) plus output. At admission only an estimate is known; ``settle``
charges the difference once the response's usage is in.

Not thread-safe: it is meant for the event loop, where ``check`` and ``settle`` never interleave (no awaits).
These are the ``memory`` backend's buckets, and the local stand-in while Redis is unreachable; with
``--state-url`` the shared buckets are the same arithmetic in a Lua script (``router.state.redis_state``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import msgspec

from router.errors import RateLimited
from router.policy.model import RateLimit

REQUESTS = "requests"
TOKENS = "tokens"


class Decision(msgspec.Struct, frozen=True):
    """The limiter's answer. ``limit`` names the bucket that refused (``requests`` or ``tokens``)."""

    admitted: bool
    retry_after_s: float = 0.0
    limit: str | None = None


ADMIT = Decision(True)


def rate_limited(tenant_name: str, decision: Decision) -> RateLimited:
    """The 429 for a tenant over its own limit in ``tenants.yaml``."""
    # Whole seconds, rounded up and at least 1: the SDK reads an integer and retrying at 0 would fail again.
    # The tolerance keeps float noise (a wait of 1.0000000001 s) from adding a whole second.
    seconds = max(1, math.ceil(decision.retry_after_s - 1e-6))
    return RateLimited(
        f"rate limit exceeded for tenant {tenant_name!r}: {decision.limit} per minute; retry after {seconds} s",
        headers={"retry-after": str(seconds), "x-should-retry": "true"},
    )


class _Bucket:
    """Level of one bucket at ``updated``; capacity and rate come from the policy on every call."""

    __slots__ = ("level", "updated")

    def __init__(self, level: float, updated: float) -> None:
        self.level = level
        self.updated = updated

    def refill(self, capacity: float, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.level = min(capacity, self.level + elapsed * capacity / 60.0)
        self.updated = now

    def wait_for(self, capacity: float, need: float) -> float:
        """Seconds until ``need`` fits (0 when it already does). Call right after ``refill``.

        A need larger than the whole burst is capped at the burst: such a request is admitted once the bucket
        is full and drives it negative, rather than being refused forever.
        """
        deficit = min(need, capacity) - self.level
        return 0.0 if deficit <= 0 else deficit * 60.0 / capacity


class RateLimiter:
    """Token buckets keyed by tenant name (bounded by the policy; ``prune`` drops removed tenants)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _bucket(self, tenant_name: str, kind: str, capacity: float, now: float) -> _Bucket:
        bucket = self._buckets.get((tenant_name, kind))
        if bucket is None:
            # A tenant's first request finds a full bucket: the burst is available from the start.
            bucket = self._buckets[(tenant_name, kind)] = _Bucket(capacity, now)
        bucket.refill(capacity, now)
        return bucket

    def check(self, tenant_name: str, limit: RateLimit | None, estimated_tokens: int) -> Decision:
        """Admit and consume (1 request, ``estimated_tokens`` tokens), or refuse without consuming anything."""
        if limit is None:
            return ADMIT
        now = self._clock()
        wanted: list[tuple[str, float, float]] = []  # (kind, capacity, need)
        if limit.requests_per_minute is not None:
            wanted.append((REQUESTS, float(limit.requests_per_minute), 1.0))
        if limit.tokens_per_minute is not None:
            wanted.append((TOKENS, float(limit.tokens_per_minute), float(max(0, estimated_tokens))))
        buckets = []
        refused: Decision | None = None
        for kind, capacity, need in wanted:
            if capacity <= 0:
                # A zero allowance never refills: say so with the longest wait a client will plausibly honour.
                refused = Decision(False, 60.0, kind)
                continue
            bucket = self._bucket(tenant_name, kind, capacity, now)
            wait = bucket.wait_for(capacity, need)
            if wait > 0 and (refused is None or wait > refused.retry_after_s):
                refused = Decision(False, wait, kind)
            buckets.append((bucket, need))
        if refused is not None:
            return refused
        for bucket, need in buckets:
            bucket.level -= need
        return ADMIT

    def settle(self, tenant_name: str, limit: RateLimit | None, actual_tokens: int, estimated_tokens: int) -> None:
        """Charge (or refund) the difference between the actual tokens and the estimate ``check`` consumed.

        The level may go negative: the tenant's next requests then wait until it refills.
        """
        if limit is None or limit.tokens_per_minute is None or limit.tokens_per_minute <= 0:
            return
        capacity = float(limit.tokens_per_minute)
        bucket = self._bucket(tenant_name, TOKENS, capacity, self._clock())
        bucket.level = min(capacity, bucket.level - (max(0, actual_tokens) - max(0, estimated_tokens)))

    def prune(self, tenant_names: Iterable[str]) -> None:
        """Forget tenants not in ``tenant_names`` (call after a policy reload removed some)."""
        keep = set(tenant_names)
        for key in [key for key in self._buckets if key[0] not in keep]:
            del self._buckets[key]
