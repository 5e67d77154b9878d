"""The upstream endpoint: base URL, credential and the transport that reaches it, built in the lifespan.

The router's own HTTP/1.1 client (``http1``) rather than the anthropic SDK for forwarding, because the
relay must pass bytes through untouched (unknown fields and event types included) and keep per-request
overhead in microseconds; the SDK is used where the router itself is a client (the Haiku classifier).
Nothing here retries: fallback is the dispatcher's job, and stacked retries turn into storms.
"""

from __future__ import annotations

import ssl
import urllib.request
from urllib.parse import urlsplit

from router.errors import ConfigError
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
    """The router's own HTTP/1.1 client, configured from the settings and the standard proxy variables."""
    context = tls_context(settings)

    def build(base_url: str) -> Transport:
        return Pool(
            base_url,
            settings.connect_timeout,
            context,
            proxy=proxy_for(base_url),
            max_body=settings.max_response_bytes,
        )

    return build


def tls_context(settings: Settings) -> ssl.SSLContext:
    """System CAs (and ``SSL_CERT_FILE``, which OpenSSL's default paths honour) plus ``upstream_ca_bundle``;
    certificate and hostname checks always on."""
    context = ssl.create_default_context()
    if settings.upstream_ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=str(settings.upstream_ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"--upstream-ca-bundle {settings.upstream_ca_bundle}: not a readable PEM file of CA certificates "
                f"({type(exc).__name__})"
            ) from None
    return context


def proxy_for(base_url: str) -> str | None:
    """The forward proxy for ``base_url`` by the usual variables: ``HTTPS_PROXY`` for https, ``HTTP_PROXY``
    for http (either case), none when ``NO_PROXY`` covers the host. Read once, when the transport is built."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(base_url)
    proxy = proxies.get(parts.scheme)
    if not proxy or not parts.hostname:
        return None
    host = parts.netloc.rpartition("@")[2]
    bypass = urllib.request.proxy_bypass_environment(host, proxies)  # type: ignore[attr-defined]
    return None if bypass else proxy

