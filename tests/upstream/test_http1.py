"""The upstream HTTP/1.1 client against scripted TCP (and TLS) servers that answer with exact bytes.

Each server is a real asyncio socket server on loopback whose handler reads one request head at a time
and writes whatever the test scripted: well-formed, chunked, delimited by closing, cut short, garbage, or
nothing at all. The client under test is ``router.upstream.http1.Pool``.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from router.errors import TransportError
from router.upstream.http1 import HIGH_WATER, Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server; counts connections and the request heads it read."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Server:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.writers.append(writer)
            try:
                await self.handler(reader, writer, self)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: Any) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request: the head, then as many body bytes as its content-length says."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra + b"content-length: %d\r\n\r\n" % len(body) + body


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    while True:
        request = await server.read_request(reader)
        writer.write(ok(b'{"n":%d}' % len(server.requests), b"request-id: req_" + str(len(server.requests)).encode() + b"\r\n"))
        await writer.drain()
        if b"close-after" in request:
            return


def test_request_head_and_body_as_sent_and_connection_reused() -> None:
    async def main() -> None:
        async with Server(keep_answering) as server:
            pool = Pool(server.url + "/base", connect_timeout=2)
            first = await pool.request("POST", "/v1/messages?beta=true", {"x-api-key": "k", "anthropic-version": "v"}, b'{"a":1}')
            assert (first.status, await first.read(), first.get("request-id")) == (200, b'{"n":1}', "req_1")
            second = await pool.request("POST", "/v1/messages", {}, b"{}")
            assert await second.read() == b'{"n":2}'
            head = server.requests[0].decode()
            assert head.startswith("POST /base/v1/messages?beta=true HTTP/1.1\r\n")
            assert f"host: 127.0.0.1:{server.port}\r\n" in head
            assert "x-api-key: k\r\n" in head and "anthropic-version: v\r\n" in head
            assert head.endswith("content-length: 7\r\n\r\n{\"a\":1}")
            assert server.connections == 1, "the second request reuses the kept-alive connection"
            await pool.close()

    run(main())


def test_chunked_and_close_delimited_bodies() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            chunked = await pool.request("POST", "/", {}, b"")
            assert await chunked.read() == b"hello world"
            delimited = await pool.request("POST", "/", {}, b"")
            assert await delimited.read() == b"until the end"
            assert server.connections == 1
            third = await pool.request("POST", "/", {}, b"")  # "connection: close" is honoured: a new one
            assert await third.read() == b"hello world" and server.connections == 2
            await pool.close()

    run(main())


def test_interim_100_response_is_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final"))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            response = await pool.request("POST", "/", {}, b"")
            assert (response.status, await response.read()) == (200, b"final")
            await pool.close()

    run(main())


def test_idle_connection_closed_by_server_is_retried_once_on_a_fresh_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(ok(b"one"))
        await writer.drain()
        if server.connections == 1:
            # Keep-alive promised, then the connection is dropped while idle: the classic stale-pool race.
            await reader.read(1)
            return
        await server.read_request(reader)

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            assert await (await pool.request("POST", "/", {}, b"")).read() == b"one"
            server.writers[0].transport.abort()  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
            again = await pool.request("POST", "/", {}, b"x")
            assert await again.read() == b"one"
            assert server.connections == 2
            await pool.close()

    run(main())


def test_a_request_the_server_may_have_read_is_never_sent_twice() -> None:
    """The stale-pool race seen from the server: it read the second POST on a reused connection and
    dropped without answering. The client cannot know whether it acted on it, so it reports a failure
    (the dispatcher falls back) rather than sending the same billed request again."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            writer.write(ok(b"one"))
            await writer.drain()
            await server.read_request(reader)  # reads the second request, then drops without a byte
            writer.transport.abort()
            return
        await server.read_request(reader)  # every later connection: closed without answering
        writer.transport.abort()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            assert await (await pool.request("POST", "/", {}, b"")).read() == b"one"
            with pytest.raises(TransportError) as failed:
                await pool.request("POST", "/", {}, b"second")
            assert failed.value.label == "connect"
            assert server.connections == 1, "no second connection: nothing was resent"
            assert [r.endswith(b"second") for r in server.requests] == [False, True]
            await pool.close()

    run(main())


def test_cut_mid_body_is_cut_and_garbage_is_malformed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        request = await server.read_request(reader)
        if b"garbage" in request:
            writer.write(b"SMTP READY\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            response = await pool.request("POST", "/", {}, b"cut")
            with pytest.raises(TransportError) as cut:
                await response.read()
            assert cut.value.label == "cut"
            with pytest.raises(TransportError) as malformed:
                await pool.request("POST", "/", {}, b"garbage")
            assert malformed.value.label == "malformed"
            assert not pool.idle, "a failed connection is never pooled"
            await pool.close()

    run(main())


def test_connection_refused_is_a_connect_failure() -> None:
    async def main() -> None:
        async with Server(keep_answering) as server:
            url = server.url
        pool = Pool(url, connect_timeout=2)
        with pytest.raises(TransportError) as refused:
            await pool.request("POST", "/", {}, b"")
        assert refused.value.label == "connect"

    run(main())


def test_stream_chunks_idle_timeout_and_abandoned_response_closes_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"6\r\nfirst\n\r\n")
        await writer.drain()
        await reader.read()  # then silence until the client closes

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            response = await pool.request("POST", "/", {}, b"")
            assert await response.chunk(1.0) == b"first\n"
            with pytest.raises(TimeoutError):
                await response.chunk(0.05)
            response.close()
            assert not pool.idle and not pool.active
            await asyncio.sleep(0.05)
            await pool.request("POST", "/", {}, b"")
            assert server.connections == 2, "the abandoned stream's connection was closed, not reused"
            await pool.close()

    run(main())


def test_caller_timeout_closes_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        await reader.read()  # never answers

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await pool.request("POST", "/", {}, b"")
            assert not pool.idle and not pool.active
            await pool.close()

    run(main())


def test_body_larger_than_the_high_water_mark_arrives_whole() -> None:
    big = bytes(range(256)) * ((3 * HIGH_WATER) // 256)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(ok(big))
        await writer.drain()
        await server.read_request(reader)
        writer.write(ok(b"after"))
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2)
            response = await pool.request("POST", "/", {}, b"")
            await asyncio.sleep(0.2)  # let the buffer pass the high-water mark: reading pauses, then resumes
            assert await response.read() == big
            assert await (await pool.request("POST", "/", {}, b"")).read() == b"after"
            assert server.connections == 1
            await pool.close()

    run(main())


def test_tls_upstream(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        async with Server(keep_answering, tls=server_ctx) as server:
            trusted = Pool(server.url, connect_timeout=2, ssl_context=ssl.create_default_context(cafile=str(cert)))
            response = await trusted.request("POST", "/", {}, b"")
            assert (response.status, await response.read()) == (200, b'{"n":1}')
            await trusted.close()
            untrusted = Pool(server.url, connect_timeout=2)  # the system CAs do not know this certificate
            with pytest.raises(TransportError) as refused:
                await untrusted.request("POST", "/", {}, b"")
            assert refused.value.label == "connect"
            await untrusted.close()

    run(main())


def test_bad_upstream_url_is_refused() -> None:
    with pytest.raises(ValueError):
        Pool("ftp://example.com", connect_timeout=1)


def _self_signed(tmp_path: Path, san: str, name: str = "cert") -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
         "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/messages", {"x-test": "a\r\nx-injected: 1"}),
        ("/v1/messages", {"x-test\r\nx-injected": "1"}),
        ("/v1/messages", {"x-test": "a\nb"}),
        ("/v1/messages", {"x-test": "nul\0byte"}),
        ("/v1/messages HTTP/1.1\r\nx-injected: 1\r\n\r\nGET /", {}),
        ("/v1/messages?q=\r", {}),
    ],
)
def test_cr_lf_nul_in_a_header_or_the_path_is_refused_and_nothing_is_sent(path: str, headers: dict[str, str]) -> None:
    async def main() -> None:
        async with Server(keep_answering) as server:
            pool = Pool(server.url, connect_timeout=2)
            with pytest.raises(TransportError) as refused:
                await pool.request("POST", path, headers, b"{}")
            assert refused.value.label == "invalid"
            ok_again = await pool.request("POST", "/v1/messages", {"x-test": "fine"}, b"{}")
            assert ok_again.status == 200 and await ok_again.read()
            assert len(server.requests) == 1 and b"x-injected" not in server.requests[0]
            await pool.close()

    run(main())


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_answer_over_the_size_cap_is_too_large_and_not_kept(framing: str) -> None:
    piece = b"x" * 65536

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        if framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(64):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (64 * len(piece)))
            for _ in range(64):
                writer.write(piece)
                await writer.drain()
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url, connect_timeout=2, max_body=1 << 20)
            response = await pool.request("POST", "/", {}, b"")
            with pytest.raises(TransportError) as failed:
                await response.read()
            assert failed.value.label == "oversize" and str(1 << 20) in failed.value.message
            response.close()
            assert not pool.idle and not pool.active
            await pool.close()

    run(main())


def test_idle_connections_are_capped() -> None:
    async def main() -> None:
        async with Server(keep_answering) as server:
            pool = Pool(server.url, connect_timeout=2, max_idle=2)
            responses = await asyncio.gather(*(pool.request("POST", "/", {}, b"") for _ in range(5)))
            for response in responses:
                await response.read()
                response.close()
            assert len(pool.idle) == 2 and server.connections == 5
            await pool.close()

    run(main())


def test_http_upstream_through_a_forward_proxy_uses_absolute_form_with_credentials() -> None:
    from tests.upstream.forward_proxy import ForwardProxy

    async def main() -> None:
        async with Server(keep_answering) as server:
            proxy = await ForwardProxy(require_auth=("user", "p@ss")).start()
            pool = Pool(server.url + "/base", connect_timeout=2, proxy=f"http://user:p%40ss@127.0.0.1:{proxy.port}")
            response = await pool.request("POST", "/v1/messages?beta=true", {}, b"{}")
            assert response.status == 200 and await response.read() == b'{"n":1}'
            assert proxy.seen == [f"POST {server.url}/base/v1/messages?beta=true"]
            assert server.requests[0].startswith(b"POST /base/v1/messages?beta=true HTTP/1.1\r\n")
            assert b"proxy-authorization" not in server.requests[0].lower()
            await pool.close()
            await proxy.close()

    run(main())


def test_https_upstream_through_a_connect_tunnel_verifies_the_upstream(tmp_path: Path) -> None:
    from tests.upstream.forward_proxy import ForwardProxy

    cert, key = _self_signed(tmp_path, "IP:127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        async with Server(keep_answering, tls=server_ctx) as server:
            proxy = await ForwardProxy().start()
            trusted = ssl.create_default_context(cafile=str(cert))
            pool = Pool(server.url, connect_timeout=2, ssl_context=trusted, proxy=proxy.url)
            response = await pool.request("POST", "/v1/messages", {}, b"{}")
            assert (response.status, await response.read()) == (200, b'{"n":1}')
            assert proxy.seen == [f"CONNECT 127.0.0.1:{server.port}"]
            await pool.close()
            untrusting = Pool(server.url, connect_timeout=2, proxy=proxy.url)
            with pytest.raises(TransportError) as refused:
                await untrusting.request("POST", "/v1/messages", {}, b"{}")
            assert refused.value.label == "connect" and "CERTIFICATE_VERIFY_FAILED" in refused.value.message
            await untrusting.close()
            await proxy.close()

    run(main())


def test_a_proxy_that_refuses_the_tunnel_is_a_connect_failure() -> None:
    from tests.upstream.forward_proxy import ForwardProxy

    async def main() -> None:
        proxy = await ForwardProxy(require_auth=("u", "p")).start()
        pool = Pool("https://127.0.0.1:9", connect_timeout=2, proxy=proxy.url)
        with pytest.raises(TransportError) as refused:
            await pool.request("POST", "/v1/messages", {}, b"{}")
        assert refused.value.label == "connect" and "407" in refused.value.message
        await pool.close()
        await proxy.close()

    run(main())


def test_hostname_mismatch_is_refused(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "DNS:other.example")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        async with Server(keep_answering, tls=server_ctx) as server:
            pool = Pool(server.url, connect_timeout=2, ssl_context=ssl.create_default_context(cafile=str(cert)))
            with pytest.raises(TransportError) as refused:
                await pool.request("POST", "/", {}, b"")
            assert refused.value.label == "connect" and "mismatch" in refused.value.message.lower()
            assert server.requests == []
            await pool.close()

    run(main())


def test_a_context_that_does_not_verify_is_refused() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="verify"):
        Pool("https://127.0.0.1:9", connect_timeout=1, ssl_context=lax)
