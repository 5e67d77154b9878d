"""The upstream endpoint: base URL, credential and a keep-alive connection pool, built in the lifespan.

The router's own HTTP/1.1 client (``http1``) rather than the anthropic SDK for forwarding, because the
relay must pass bytes through untouched (unknown fields and event types included) and keep per-request
overhead in microseconds; the SDK is used where the router itself is a client (the Haiku classifier).
asyncio and uvloop set TCP_NODELAY on every TCP transport, so small SSE frames are not held back by
Nagle's algorithm. Nothing here retries (but for a request written on a connection the server had
already closed, see ``http1``): fallback is the dispatcher's job, and stacked retries turn into storms.
"""

from __future__ import annotations

from router.upstream.http1 import Pool

from router.settings import Secret, Settings


class Upstream:
    """A provider endpoint: base URL, credential and a pooled session."""

    def __init__(self, base_url: str, api_key: Secret | None, pool: Pool) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key.reveal() if api_key is not None else None
        self.pool = pool

    @classmethod
    def create(cls, settings: Settings, base_url: str | None = None) -> Upstream:
        url = base_url or settings.upstream_url
        # Unbounded: the router's own concurrency is the limit; a pool cap would queue requests invisibly.
        return cls(url, settings.upstream_key, Pool(url, settings.connect_timeout))

    async def close(self) -> None:
        await self.pool.close()
