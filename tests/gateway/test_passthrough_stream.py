"""A forwarded body is streamed, not held: the client has the first piece of a download while the upstream is
still holding back the rest; and a body the upstream breaks off mid-way reaches the client as an incomplete
body (never a clean end), counted and logged as ``cut``. The upstream here is a small aiohttp app the test
controls piece by piece."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request

import httpx2
import pytest
from aiohttp import web

from tests.conftest import CLIENT_KEY
from tests.servers import LoopThread

PIECE = b"p" * 65536


class Upstream:
    """``/v1/files/held/content``: one piece, then the rest once ``release`` is called; ``/v1/files/cut/content``:
    two pieces of a chunked body, then a reset."""

    def __init__(self) -> None:
        self.loop = LoopThread()
        self.gate = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/files/held/content", self.held)
        app.router.add_get("/v1/files/cut/content", self.cut)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run(site.start())
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def held(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/octet-stream", "request-id": "req_up_1"})
        await response.prepare(request)
        await response.write(PIECE)
        await asyncio.wait_for(self.gate.wait(), 20)
        await response.write(PIECE * 3)
        await response.write_eof()
        return response

    async def cut(self, request: web.Request) -> web.StreamResponse:
        # Chunked, like a results file: a relay that ended it cleanly would hand the client a short body as whole.
        response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(PIECE * 2)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return response

    def release(self) -> None:
        self.loop.loop.call_soon_threadsafe(self.gate.set)

    def close(self) -> None:
        self.release()
        self.loop.run(self.runner.cleanup())
        self.loop.stop()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


def test_a_download_streams_through_before_the_upstream_has_finished(make_router, upstream):
    router = make_router(upstream_url=upstream.url)
    with httpx2.Client(timeout=10) as client:
        with client.stream("GET", router.url + "/v1/files/held/content", headers={"x-api-key": CLIENT_KEY}) as response:
            assert response.status_code == 200 and response.headers["request-id"] == "req_up_1"
            pieces = response.iter_bytes()
            first = next(pieces)  # arrives while the upstream still holds the rest back
            assert first and set(first) == {ord("p")}
            upstream.release()
            total = len(first) + sum(len(chunk) for chunk in pieces)
    assert total == len(PIECE) * 4


def test_a_body_cut_mid_way_is_never_a_clean_end(make_router, upstream, caplog):
    caplog.set_level(logging.INFO, logger="router.access")
    router = make_router(upstream_url=upstream.url)
    with httpx2.Client(timeout=10) as client:
        with pytest.raises(httpx2.HTTPError):  # the client's HTTP library sees the body end short
            with client.stream("GET", router.url + "/v1/files/cut/content", headers={"x-api-key": CLIENT_KEY}) as response:
                assert response.status_code == 200
                for _ in response.iter_bytes():
                    pass
    end = time.monotonic() + 5
    while not [r for r in caplog.records if r.name == "router.access"] and time.monotonic() < end:
        time.sleep(0.01)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]
    assert line["outcome"] == "cut" and line["end"] == "cut" and line["passthrough"] == "files"
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'router_passthrough_requests_total{family="files",method="GET",outcome="cut"} 1.0' in text
