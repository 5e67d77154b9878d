"""The forward path as users behind corporate networks meet it: a forward proxy from the standard
variables (for forwarded requests and the Haiku triage call alike), a private CA, a hostname mismatch, and
an upstream answer over the size cap.

The proxy cases run ``router serve`` as a real process with its own environment, so the proxy variables
reach exactly the router and nothing else in the test process."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest
from aiohttp import web

from router.sim.config import LatencyProfile, SimConfig
from router.sim.server import create_sim_app
from tests.conftest import CLIENT_KEY, POLICIES, ROOT, SimHandle, is_triage_call
from tests.servers import LoopThread, free_port
from tests.upstream.forward_proxy import ForwardProxy
from tests.upstream.test_http1 import _self_signed


def _serve(env: dict[str, str], upstream: str, policies: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--port", str(port), "--upstream-url", upstream,
         "--policies", str(policies)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with direct.open(url + "/livez", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("router serve did not start: " + (proc.stderr.read() if proc.stderr else b"").decode()[-2000:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def always_triage(tmp_path: Path) -> Path:
    """Policies whose classifier asks Haiku about every ``auto`` request."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    classifier = policies / "classifier.yaml"
    classifier.write_text(re.sub(r"confidence_threshold: [0-9.]+", "confidence_threshold: 1.0", classifier.read_text()))
    return policies


@pytest.mark.parametrize("bypass", [False, True], ids=["through-proxy", "no-proxy"])
def test_forwarded_requests_and_the_haiku_call_honour_the_proxy_variables(
    sim: SimHandle, always_triage: Path, bypass: bool
) -> None:
    loop = LoopThread()
    proxy = loop.run(ForwardProxy().start())
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"ANTHROPIC_API_KEY": "sk-upstream-proxy-test", "HTTP_PROXY": proxy.url})
    if bypass:
        env["NO_PROXY"] = "127.0.0.1"
    proc, url = _serve(env, sim.url, always_triage)
    try:
        client = anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0)
        message = client.messages.create(model="auto", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
        assert message.content
        received = sim.requests(triage=True)
        assert sum(is_triage_call(r) for r in received) == 1 and len(received) == 2
        posts = [line for line in proxy.seen if line.startswith("POST ")]
        if bypass:
            assert proxy.seen == []
        else:
            assert posts == [f"POST {sim.url}/v1/messages"] * 2, proxy.seen
    finally:
        _stop(proc)
        loop.run(proxy.close())
        loop.stop()


class TlsSim:
    """The simulator served over TLS with a given certificate (aiohttp site with an SSL context)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.loop = LoopThread()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        config = SimConfig(profiles={"*": LatencyProfile(ttft_ms=0, tokens_per_s=0, output_tokens=4)}, faults=[])

        async def start() -> web.AppRunner:
            runner = web.AppRunner(create_sim_app(config), access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            return runner

        self.runner = self.loop.run(start())
        self.url = f"https://127.0.0.1:{self.runner.addresses[0][1]}"

    def close(self) -> None:
        self.loop.run(self.runner.cleanup())
        self.loop.stop()


def _ask(router: Any) -> anthropic.APIResponse[Any] | anthropic.APIStatusError:
    client = anthropic.Anthropic(base_url=router.url, api_key=CLIENT_KEY, max_retries=0)
    try:
        return client.messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    except anthropic.APIStatusError as exc:
        return exc


def test_a_private_ca_bundle_is_needed_and_sufficient(make_router: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "IP:127.0.0.1")
    upstream = TlsSim(cert, key)
    try:
        trusted = _ask(make_router(upstream_url=upstream.url, upstream_ca_bundle=cert))
        assert not isinstance(trusted, Exception) and trusted.http_response.status_code == 200
        refused = _ask(make_router(upstream_url=upstream.url))
        assert isinstance(refused, anthropic.APIStatusError) and refused.status_code == 502
        assert "CERTIFICATE_VERIFY_FAILED" in refused.response.text
        assert refused.response.json()["type"] == "error"
    finally:
        upstream.close()


def test_a_hostname_mismatch_fails_even_with_the_ca(make_router: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "DNS:other.example")
    upstream = TlsSim(cert, key)
    try:
        refused = _ask(make_router(upstream_url=upstream.url, upstream_ca_bundle=cert))
        assert isinstance(refused, anthropic.APIStatusError) and refused.status_code == 502
        assert "mismatch" in refused.response.text.lower()
    finally:
        upstream.close()


def test_a_missing_ca_bundle_stops_serve_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve", "--port", str(free_port()), "--upstream-ca-bundle", str(missing)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "ANTHROPIC_API_KEY": "sk-test-key-ca-bundle"},
    )
    assert result.returncode == 2 and f"--upstream-ca-bundle {missing}" in result.stderr


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_an_answer_over_the_cap_is_a_502_and_the_router_stays_healthy(make_router: Any) -> None:
    """A 48 MiB answer against a 1 MiB cap: the client gets a 502 envelope, the router answers the next
    request, and the process did not hold the answer (RSS grows by far less than its size)."""
    piece = b"x" * 65536
    pieces = 768  # 48 MiB

    async def huge(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.content_length = len(piece) * pieces
        await response.prepare(request)
        try:
            for _ in range(pieces):
                await response.write(piece)
        except (ConnectionError, RuntimeError):
            pass
        return response

    loop = LoopThread()

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/v1/messages", huge)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = loop.run(start())
    try:
        router = make_router(upstream_url=f"http://127.0.0.1:{runner.addresses[0][1]}", max_response_bytes=1 << 20)
        before = _rss_bytes()
        refused = _ask(router)
        grown = _rss_bytes() - before
        assert isinstance(refused, anthropic.APIStatusError) and refused.status_code == 502
        body = refused.response.json()
        assert body["type"] == "error" and "larger than" in body["error"]["message"]
        assert grown < 16 << 20, f"RSS grew by {grown} bytes for a {len(piece) * pieces}-byte answer"
        with urllib.request.urlopen(router.url + "/livez", timeout=5) as live:
            assert live.status == 200
    finally:
        loop.run(runner.cleanup())
        loop.stop()
