"""A circuit breaker for the Haiku triage call: stop calling a dependency that keeps failing.

Owns the state machine only — closed → open after ``failure_threshold`` consecutive failures → half-open
once ``cooloff_s`` has passed, where one probe call is let through → closed on its success, open again
(for a fresh cool-off) on its failure. It does not make calls, sleep or log; the caller asks ``allow()``
before calling and reports the outcome. Time comes from an injected clock so tests need no sleeping.

One instance per dependency, built in the app's lifespan. Not thread-safe: it lives on one event loop,
where ``allow()`` and ``record_*`` run without awaiting in between, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(
        self, failure_threshold: int = 5, cooloff_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooloff_s < 0:
            raise ValueError("cooloff_s must not be negative")
        self.failure_threshold = failure_threshold
        self.cooloff_s = cooloff_s
        self._clock = clock
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started_at = 0.0

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` as of now (an open breaker past its cool-off reads half-open)."""
        if self._state == OPEN and self._clock() - self._opened_at >= self.cooloff_s:
            return HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a call go out now? In half-open, ``True`` once: that caller is the probe."""
        now = self._clock()
        if self._state == CLOSED:
            return True
        if self._state == OPEN:
            if now - self._opened_at < self.cooloff_s:
                return False
            self._state = HALF_OPEN
            self._probe_started_at = now
            return True
        # Half-open with a probe in flight. A probe whose caller was cancelled never reports back; after
        # another cool-off its lease lapses, so the breaker cannot stay stuck half-open for good.
        if now - self._probe_started_at >= self.cooloff_s:
            self._probe_started_at = now
            return True
        return False

    def record_success(self) -> None:
        self._state = CLOSED
        self._failures = 0

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = OPEN
            self._opened_at = self._clock()
