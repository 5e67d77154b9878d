"""Per-model cooldowns: after a 429/529, later requests skip that model until its retry-after passes.

One instance lives for the process (built in the app's lifespan). It only records and answers; the
decision to skip is made by ``plan`` from a snapshot.
"""

from __future__ import annotations

import msgspec


class Cooling(msgspec.Struct, frozen=True):
    until: float
    status: int


class Cooldowns:
    """Model id -> when it may be tried again (monotonic clock) and the status that put it there."""

    def __init__(self) -> None:
        self._by_model: dict[str, Cooling] = {}

    def mark(self, model: str, seconds: float, status: int, now: float) -> None:
        until = now + max(seconds, 0.0)
        current = self._by_model.get(model)
        if current is None or current.until < until:
            self._by_model[model] = Cooling(until, status)

    def clear(self, model: str) -> None:
        self._by_model.pop(model, None)

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
