"""The upstream endpoint: base URL, credential and the transport that reaches it, built in the lifespan.

The router's own HTTP/1.1 client (``http1``) rather than the anthropic SDK for forwarding, because the
relay must pass bytes through untouched (unknown fields and event types included) and keep per-request
overhead in microseconds; the SDK is used where the router itself is a client (the Haiku classifier).
Nothing here retries: fallback is the dispatcher's job, and stacked retries turn into storms.
"""

from __future__ import annotations

from router.settings import Secret, Settings
from router.upstream.http1 import Pool
from router.upstream.transport import Transport, TransportFactory


class Upstream:
    """A provider endpoint: base URL, credential and the transport (connection pool) that reaches it."""

    def __init__(self, base_url: str, api_key: Secret | None, transport: Transport) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key.reveal() if api_key is not None else None
        self.transport = transport

    async def close(self) -> None:
        await self.transport.close()


def default_transport(settings: Settings) -> TransportFactory:
    """The router's own HTTP/1.1 client, configured from the settings."""

    def build(base_url: str) -> Transport:
        # Unbounded: the router's own concurrency is the limit; a pool cap would queue requests invisibly.
        return Pool(base_url, settings.connect_timeout)

    return build
