"""The month's spend per tenant on local disk: a SQLite file in write-ahead-log mode, so a single router
that restarts (a deploy, a crash, SIGKILL) keeps what its tenants spent this month.

Owns the file's schema and its reads and writes. Totals are written, not increments: a flush is
idempotent, and a crash between two flushes loses at most the spend since the last one (the lifespan
flushes every second and on drain). The file is created on the first write, so a router without budgeted
traffic leaves nothing behind. Calls block (SQLite is synchronous): run them off the event loop.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS spend (tenant TEXT NOT NULL, month TEXT NOT NULL, usd REAL NOT NULL, PRIMARY KEY (tenant, month))"


class LedgerFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed write survives the process being killed (it is in the WAL file);
        # only a power loss can take the last transactions, which is the trade every WAL user makes.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        return db

    def load(self, month: str) -> dict[str, float]:
        """Tenant -> USD spent in ``month`` (``YYYY-MM``); empty when the file does not exist yet."""
        if not self.path.exists():
            return {}
        db = self._connect()
        try:
            return {tenant: usd for tenant, usd in db.execute("SELECT tenant, usd FROM spend WHERE month = ?", (month,))}
        finally:
            db.close()

    def save(self, month: str, totals: dict[str, float]) -> None:
        """Write these tenants' month-to-date totals in one transaction."""
        if not totals:
            return
        db = self._connect()
        try:
            with db:
                db.executemany(
                    "INSERT INTO spend (tenant, month, usd) VALUES (?, ?, ?) "
                    "ON CONFLICT (tenant, month) DO UPDATE SET usd = excluded.usd",
                    [(tenant, month, usd) for tenant, usd in totals.items()],
                )
        finally:
            db.close()
