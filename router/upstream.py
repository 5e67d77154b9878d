"""The upstream endpoint: base URL, credential and a keep-alive connection pool, built in the lifespan.

The router's own HTTP/1.1 client (``http1``) rather than the anthropic SDK for forwarding, because the
relay must pass bytes through untouched (unknown fields and event types included) and keep per-request
overhead in microseconds; the SDK is used where the router itself is a client (the Haiku classifier).
asyncio and uvloop set TCP_NODELAY on every TCP transport, so small SSE frames are not held back by
Nagle's algorithm. Nothing here retries (but for a request written on a connection the server had
already closed, see ``http1``): fallback is the dispatcher's job, and stacked retries turn into storms.
"""

from __future__ import annotations

from collections.abc import Mapping

from router.http1 import Pool

from router.policy.model import Action, ModelInfo
from router.settings import Secret, Settings
from router.view import ParsedRequest, body_for_model


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


class Outbound:
    """One client request as it goes upstream: endpoint, headers and timeouts; the body depends on the
    target model (its id, its output limit, whether it supports extended thinking)."""

    __slots__ = ("action", "headers", "models", "parsed", "path_qs", "settings", "upstream")

    def __init__(
        self,
        upstream: Upstream,
        settings: Settings,
        path_qs: str,
        headers: dict[str, str],
        parsed: ParsedRequest,
        models: Mapping[str, ModelInfo] | None = None,
        action: Action | None = None,
    ) -> None:
        self.upstream = upstream
        self.settings = settings
        self.path_qs = path_qs
        self.headers = headers
        self.parsed = parsed
        self.models = models or {}
        self.action = action

    def body(self, model: str) -> bytes:
        info = self.models.get(model)
        action = self.action
        if info is None or action is None:
            return body_for_model(self.parsed, model)
        return body_for_model(
            self.parsed,
            model,
            info.max_output_tokens if action.clamp_max_tokens else None,
            action.drop_unsupported and "thinking" not in info.features,
        )
