"""Message Batches and tenants: who created which batch, whether its cost is booked yet, and booking it.

Owns the batch book of one process. A batch's cost is known only when its results are fetched (hours
later, maybe by another replica, maybe after a restart), so two facts must outlive the request that
created it: the tenant that created it (its results are charged to that tenant, and another tenant gets a
404 for it) and whether it was already booked (fetching the results twice books them once).

Where they live follows the state backend: Redis when there is one (every replica sees them; the booking
claim is one ``SET NX``), else the memory backend's SQLite file (the spend ledger's file, own tables), else
memory only (``ledger_path`` unset: a restart forgets them -- a batch then is charged to whoever fetches
its results, and could be booked again). While Redis is unreachable the local tables stand in (counted as
a state error like every other operation); a batch claimed locally then may be booked a second time by a
replica that sees Redis -- the same trade the degraded budget makes: serve, and maybe over-count.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from router.errors import StateBackendError
from router.state.batch_records import BatchFile, BatchRedis
from router.state.health import StateHealth
from router.state.redis_state import RedisState
from router.tenancy.spend import month_key
from router.tenancy.state import Reservation, Tenancy


class BatchBook:
    def __init__(self, remote: RedisState | None, path: Path | None, health: StateHealth) -> None:
        self.remote = BatchRedis(remote.client) if remote is not None else None
        self.file = BatchFile(path) if path is not None and remote is None else None
        self.health = health
        self._owners: dict[str, str] = {}
        self._booked: set[str] = set()

    @classmethod
    def for_tenancy(cls, tenancy: Tenancy, ledger_path: Path | None) -> BatchBook:
        return cls(tenancy.remote, ledger_path, tenancy.health)

    async def remember(self, batch_id: str, tenant: str) -> None:
        """``tenant`` created ``batch_id``."""
        self._owners[batch_id] = tenant
        if self.remote is not None and self.health.usable:
            try:
                await self.remote.save_owner(batch_id, tenant)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
        elif self.file is not None:
            await asyncio.to_thread(self.file.save_owner, batch_id, tenant)

    async def owner(self, batch_id: str) -> str | None:
        """The tenant that created ``batch_id`` through this router, if it is known."""
        known = self._owners.get(batch_id)
        if known is not None:
            return known
        if self.remote is not None and self.health.usable:
            try:
                known = await self.remote.owner(batch_id)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
        elif self.file is not None:
            known = await asyncio.to_thread(self.file.owner, batch_id)
        if known is not None:
            self._owners[batch_id] = known
        return known

    async def claim(self, batch_id: str) -> bool:
        """True exactly once per batch (per fleet with Redis, per ledger file without): the caller books it."""
        if batch_id in self._booked:
            return False
        first = True
        if self.remote is not None and self.health.usable:
            try:
                first = await self.remote.claim(batch_id)
            except StateBackendError as exc:
                self.health.failed(exc.operation, exc)
        elif self.file is not None:
            first = await asyncio.to_thread(self.file.claim, batch_id)
        self._booked.add(batch_id)
        return first


def book_spend(tenancy: Tenancy, tenant: str, usd: float) -> None:
    """Add ``usd`` to ``tenant``'s month-to-date spend (nothing reserved, nothing to release), on the
    backend its Messages spend goes to: the shared ledger (written after the reply, local if Redis fails)
    or the local ledger."""
    if usd <= 0:
        return
    remote = tenancy.remote is not None and tenancy.health.usable
    booking = Reservation(tenant, 0, 0.0, None, None, remote, "", month_key(time.time()))
    tenancy.settle(booking, 0, usd)
