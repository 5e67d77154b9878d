"""The per-process tenancy state: the key -> tenant directory of the current policy, the token buckets and
the budget ledger.

Owns their lifetime (one of each per process, built in the lifespan) and the rule that a directory is built
once per policy version. Admission reads and writes them; nothing else does.
"""

from __future__ import annotations

from router.policy.loader import Policy
from router.tenancy.limits import RateLimiter
from router.tenancy.spend import BudgetLedger
from router.tenancy.tenants import TenantDirectory


class Tenancy:
    def __init__(
        self,
        limiter: RateLimiter | None = None,
        ledger: BudgetLedger | None = None,
    ) -> None:
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.ledger = ledger if ledger is not None else BudgetLedger()
        self._directories: dict[str, TenantDirectory] = {}

    def tenants(self, policy: Policy) -> TenantDirectory:
        """The key -> tenant map of ``policy`` (built once per policy version)."""
        directory = self._directories.get(policy.version)
        if directory is None:
            directory = TenantDirectory(policy.tenants)
            self._directories = {policy.version: directory}  # only the current version is kept
            self.limiter.prune(directory.names())
        return directory
