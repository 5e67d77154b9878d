"""Where the router keeps which tenant created which Message Batch and which batches' cost is booked: on the
shared Redis backend, or in the memory backend's SQLite file (the spend ledger's file, its own tables).

Owns the key layout and the table schema for those two facts, nothing else. Both outlive a restart, so a
batch created before one is still charged to its creator and never booked twice.

Redis keys (expire after ``BATCH_TTL_S``: results are downloadable for 29 days):

    router:batch:<id>:owner     string tenant name
    router:batch:<id>:booked    string "1", set with NX: the first replica to set it books the cost

SQLite calls block: run them off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from router.errors import StateBackendError

BATCH_TTL_S = 35 * 24 * 3600

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batch_owners (id TEXT PRIMARY KEY, tenant TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS batch_booked (id TEXT PRIMARY KEY)",
)


class BatchFile:
    """The two batch tables in the SQLite file at ``path`` (created on the first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            db.execute(statement)
        return db

    def save_owner(self, batch_id: str, tenant: str) -> None:
        db = self._connect()
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO batch_owners (id, tenant) VALUES (?, ?)", (batch_id, tenant))
        finally:
            db.close()

    def owner(self, batch_id: str) -> str | None:
        if not self.path.exists():
            return None
        db = self._connect()
        try:
            row = db.execute("SELECT tenant FROM batch_owners WHERE id = ?", (batch_id,)).fetchone()
            return None if row is None else str(row[0])
        finally:
            db.close()

    def claim(self, batch_id: str) -> bool:
        """Mark the batch booked; True only for the first caller (one transaction: two processes on one
        file cannot both win)."""
        db = self._connect()
        try:
            with db:
                cursor = db.execute("INSERT OR IGNORE INTO batch_booked (id) VALUES (?)", (batch_id,))
                return cursor.rowcount == 1
        finally:
            db.close()


class BatchRedis:
    """The same two facts on Redis, through the shared backend's client (one round trip each)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def _call(self, operation: str, coro: Any) -> Any:
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001 -- redis, OS and timeout errors alike: the caller falls back
            raise StateBackendError(operation, f"{type(exc).__name__}: {str(exc)[:200]}") from None

    async def save_owner(self, batch_id: str, tenant: str) -> None:
        await self._call("batch_owner", self.client.set(f"router:batch:{batch_id}:owner", tenant, ex=BATCH_TTL_S))

    async def owner(self, batch_id: str) -> str | None:
        value = await self._call("batch_owner", self.client.get(f"router:batch:{batch_id}:owner"))
        return None if value is None else str(value)

    async def claim(self, batch_id: str) -> bool:
        done = await self._call("batch_claim", self.client.set(f"router:batch:{batch_id}:booked", "1", nx=True, ex=BATCH_TTL_S))
        return bool(done)
