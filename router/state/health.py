"""Whether the shared state backend is usable right now, and what to do when it is not.

Owns the degraded flag of one process: the first failure flips it (one warning log line and a metric), and
from then on callers skip the backend entirely -- no request waits on a dead Redis -- until a background
probe finds it answering again, which flips it back (one info line). Errors are counted by operation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("router.state")


class StateHealth:
    def __init__(
        self,
        backend: str,
        on_degraded: Callable[[bool], None] = lambda _: None,
        on_error: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.backend = backend
        """``memory`` or ``redis``."""
        self.degraded = False
        self.since: float | None = None
        """Wall-clock time the backend was last found unusable (None while healthy)."""
        self.errors = 0
        self._on_degraded = on_degraded
        self._on_error = on_error

    @property
    def usable(self) -> bool:
        return self.backend != "memory" and not self.degraded

    def failed(self, operation: str, error: BaseException) -> None:
        self.errors += 1
        self._on_error(operation)
        if not self.degraded:
            self.degraded = True
            self.since = time.time()
            self._on_degraded(True)
            # The error's text only (a connection error names host and port, never the password).
            log.warning(
                "state backend %s unavailable (%s): DEGRADED -- cooldowns, sticky routes, rate limits "
                "and budgets use local state until it answers again",
                self.backend,
                error,
            )

    def recovered(self) -> None:
        if self.degraded:
            self.degraded = False
            outage = time.time() - (self.since or time.time())
            self.since = None
            self._on_degraded(False)
            log.warning("state backend %s answers again after %.1f s: shared state restored", self.backend, outage)

    def report(self) -> dict[str, object]:
        """What ``/readyz`` says about the state backend (Redis down is never a reason to be unready)."""
        return {"backend": self.backend, "degraded": self.degraded, "errors": self.errors}
