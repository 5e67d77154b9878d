"""The seam between the router and the wire: one request in, a status, headers and a body (whole or as a
stream of chunks) out.

Owns the interface only. ``http1.Pool`` implements it for HTTP/1.1 (plain, TLS, through a proxy); a test or
a second provider (Bedrock, Vertex, an Anthropic-compatible endpoint) supplies another implementation
through a ``TransportFactory`` passed to ``create_app``. Nothing above this module knows which one it talks
to, and no implementation retries across targets: fallback is the gateway's job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Response(Protocol):
    """One upstream response. ``close`` must be called once: it keeps a fully read connection for reuse and
    aborts one that is not (a client that left mid-stream stops the upstream's generation)."""

    status: int
    headers: list[tuple[str, str]]
    """As received, in order; a repeated header stays repeated."""

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        ...

    async def read(self) -> bytes:
        """The whole body (JSON answers and error bodies); raises ``TransportError`` past the size cap."""
        ...

    async def chunk(self, idle_timeout: float | None) -> bytes:
        """The next piece of a streamed body; ``b""`` at its end. Raises ``TransportError`` on a cut and
        ``TimeoutError`` when nothing arrives for ``idle_timeout`` seconds."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> Response:
        """Send one request; returns once the response head has arrived. Raises ``TransportError`` when
        no response could be had (connect failure, reset, malformed head). Never sends a request twice
        when any of its bytes may have reached the server."""
        ...

    async def close(self) -> None: ...


TransportFactory = Callable[[str], Transport]
"""Builds the transport for a base URL (the lifespan calls it once per endpoint)."""
