"""The upstream transport is injected: the app uses whatever ``TransportFactory`` it is given, for every
forwarded request, JSON and streaming, and a transport failure is a fallback like any other."""

from __future__ import annotations

from typing import Any

import anthropic

from router.errors import TransportError
from router.upstream.http1 import Pool
from router.upstream.transport import Response, Transport
from tests.conftest import CLIENT_KEY, UPSTREAM_KEY


class Recording:
    """A real http1 pool that records what it was asked to send, and can refuse one model."""

    def __init__(self, base_url: str, refuse: str | None = None) -> None:
        self.base_url = base_url
        self.pool = Pool(base_url, 5.0)
        self.refuse = refuse
        self.sent: list[tuple[str, str, dict[str, str], bytes]] = []

    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> Response:
        self.sent.append((method, path_qs, headers, body))
        if self.refuse is not None and f'"model":"{self.refuse}"'.encode() in body:
            raise TransportError("connect", "refused by the test transport")
        return await self.pool.request(method, path_qs, headers, body)

    async def close(self) -> None:
        await self.pool.close()


def test_forwarded_requests_go_through_the_injected_transport(make_router: Any) -> None:
    built: list[Recording] = []

    def factory(base_url: str) -> Transport:
        built.append(Recording(base_url))
        return built[-1]

    router = make_router(transport=factory)
    client = anthropic.Anthropic(base_url=router.url, api_key=CLIENT_KEY, max_retries=0)
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert message.content
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream)
    assert len(built) == 1 and built[0].base_url == router.settings.upstream_url
    forwarded = [(m, p, h) for m, p, h, _ in built[0].sent]
    assert [(m, p) for m, p, _ in forwarded] == [("POST", "/v1/messages"), ("POST", "/v1/messages")]
    assert all(h["x-api-key"] == UPSTREAM_KEY and CLIENT_KEY not in h.values() for _, _, h in forwarded)


def test_a_transport_failure_falls_back_to_the_next_tier(make_router: Any) -> None:
    built: list[Recording] = []

    def factory(base_url: str) -> Transport:
        built.append(Recording(base_url, refuse="claude-opus-4-8"))
        return built[-1]

    router = make_router(transport=factory)
    client = anthropic.Anthropic(base_url=router.url, api_key=CLIENT_KEY, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="opus", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-router-attempts"].startswith("claude-opus-4-8:connect,")
    assert raw.headers["x-router-model"] != "claude-opus-4-8"
    assert len(built[0].sent) == 2
