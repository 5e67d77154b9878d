"""A small HTTP/1.1 client for the upstream: keep-alive connections, one request at a time on each, parsed
with httptools. It does what the proxy needs and nothing else.

Why not aiohttp: the forward path is a few hundred microseconds of router CPU per request, and aiohttp's
general-purpose client (header multidicts, auto headers, payload registry, timer contexts, tracing hooks)
was about a quarter of it (BENCHMARKS.md). Here a request is one prepared header block, one ``write`` and
a parser callback per read.

Why not a library: BENCHMARKS.md ("Upstream transport") measured aiohttp at +165-182 us and the fastest
Rust-backed client (pyreqwest) at +123-127 us of client CPU per JSON request over this client, and more
per streamed chunk; the rule was to adopt a library within ~40 us.

Semantics the dispatcher relies on:
- Nothing is ever sent twice. A pooled connection is reused only while it is open and not closing; once a
  request's first byte is written, any failure is reported, never resent (a server may have read it, and a
  resent POST is a second, billed generation).
- Failures are ``TransportError``s with a ``label``: ``connect`` (no connection, the proxy refused the
  tunnel, or the connection closed before any response), ``cut`` (closed mid-response), ``malformed``
  (not HTTP), ``oversize`` (the answer is larger than ``max_body``), ``invalid`` (a header or path with
  CR, LF or NUL: never written). Timeouts are the caller's (``asyncio.timeout`` around the call); a
  timed-out or abandoned response closes its connection.
- A response goes back to the pool only when it was read to its end and both sides allow keep-alive. The
  pool keeps at most ``max_idle`` idle connections and drops those idle longer than ``IDLE_SECONDS``.
- Proxies: an ``http://`` upstream behind a proxy gets absolute-form requests sent to the proxy; an
  ``https://`` one a ``CONNECT`` tunnel through it, then TLS to the upstream with hostname verification.
  TLS verification is never switched off.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections import deque
from urllib.parse import unquote, urlsplit

import httptools

from router.errors import TransportError

IDLE_SECONDS = 15.0
"""A pooled connection idle longer than this is closed rather than reused (servers drop idle ones)."""
HIGH_WATER = 1 << 20
"""Unread body bytes buffered before the connection stops reading (a slow client slows the upstream)."""
MAX_BODY = 64 << 20
"""Default cap on one response body (64 MiB: far above the API's largest answers)."""
MAX_IDLE = 256
"""Idle keep-alive connections kept for reuse; more are closed."""


class Response:
    """Status and headers of an upstream response; its body is read with ``read`` or ``chunk``."""

    __slots__ = ("_conn", "_done", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: list[tuple[str, str]]) -> None:
        self._conn = conn
        self._done = False
        self.status = status
        self.headers = headers
        """As received: (name, value) pairs, names in the server's case."""

    def get(self, name: str) -> str | None:
        """The first header named ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    async def read(self) -> bytes:
        """The whole body. Raises ``TransportError`` (``cut``) when the connection ends early."""
        conn = self._conn
        parts: list[bytes] = []
        while True:
            if conn.buffer:
                parts.append(conn.take())  # taking resumes a connection paused at the high-water mark
            if conn.complete:
                break
            await conn.wait_data(None)
        self._finish()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunk(self, idle_timeout: float | None) -> bytes:
        """The body bytes that have arrived (waiting up to ``idle_timeout`` for some); ``b""`` at the end.
        Raises ``TimeoutError`` when nothing arrives in time, ``TransportError`` when the connection ends."""
        conn = self._conn
        if not conn.buffer and not conn.complete:
            await conn.wait_data(idle_timeout)
        data = conn.take()
        if not data and conn.complete:
            self._finish()
        return data

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._conn.pool.release(self._conn)

    def close(self) -> None:
        """Done with this response: pooled again if it was complete, else its connection is closed."""
        if self._done:
            return
        self._done = True
        conn = self._conn
        if conn.complete and not conn.buffer:
            conn.pool.release(conn)
        else:
            conn.abort()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and its response parser."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.until_eof = False
        self.keep_alive = True
        self.received = False
        self.closed = False
        self.error: TransportError | None = None
        self.paused = False
        self.idle_since = 0.0
        self.body_bytes = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.error = TransportError("malformed", "upstream sent a response that is not valid HTTP/1.1")
            self.abort()
        else:
            if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and self.until_eof and not self.complete and exc is None:
            self.complete = True  # a body delimited by the connection closing has ended
        elif not self.complete and self.error is None:
            if not self.received:
                self.error = TransportError("connect", "upstream closed the connection before responding")
            else:
                self.error = TransportError("cut", "upstream connection closed mid-response")
        self.pool.forget(self)
        self._wake()

    # -- httptools callbacks ------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status < 200:  # 1xx: an interim response; the real one follows
            self.raw_headers = []
            return
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        if self.status not in (204, 304):
            names = {name.lower() for name, _ in self.raw_headers}
            self.until_eof = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.pool.max_body:
            # Stop reading at once and drop what is buffered: the answer never sits in memory whole.
            self.error = TransportError(
                "oversize", f"upstream answer larger than the router's limit of {self.pool.max_body} bytes"
            )
            self.buffer = []
            self.buffered = 0
            self.abort()
            return
        self.buffer.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True

    # -- used by Pool and Response ------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_data(self, timeout: float | None) -> None:
        """Until the parser made progress (or the connection ended); raises the connection's error."""
        if self.error is not None:
            raise self.error
        if self.closed:
            raise TransportError("cut", "upstream connection closed mid-response")
        self.waiter = waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, waiter.cancel) if timeout is not None else None
        try:
            await waiter
        except asyncio.CancelledError:
            if timer is not None and waiter.cancelled() and not _task_cancelling():
                raise TimeoutError from None
            raise
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        data = self.buffer[0] if len(self.buffer) == 1 else b"".join(self.buffer)
        self.buffer = []
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def send(self, request: bytes) -> Response:
        """Write a request and wait for the response's status and headers."""
        assert self.transport is not None
        self.raw_headers = []
        self.headers_done = self.complete = self.until_eof = self.received = False
        self.body_bytes = 0
        self.transport.write(request)
        try:
            while not self.headers_done:
                await self.wait_data(None)
        except BaseException:
            self.abort()
            raise
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self.raw_headers]
        return Response(self, self.status, headers)

    def usable(self) -> bool:
        """Open and not closing: a request written now reaches a connection the server has not closed."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def tunnel(self, request: bytes, ssl_context: ssl.SSLContext, server_hostname: str) -> None:
        """CONNECT through the proxy this connection reaches, then TLS to the upstream over the tunnel."""
        response = await self.send(request)
        if response.status != 200:
            self.abort()
            raise TransportError("connect", f"proxy refused the tunnel to the upstream (HTTP {response.status})")
        # The proxy's answer to CONNECT has no body; what follows on the socket is the upstream's TLS.
        self.parser = httptools.HttpResponseParser(self)
        self.buffer, self.buffered, self.received = [], 0, False
        assert self.transport is not None
        self.transport = await self.loop.start_tls(  # type: ignore[assignment]
            self.transport, self, ssl_context, server_hostname=server_hostname
        )

    def abort(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()


def _task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Pool:
    """Keep-alive connections to one origin, directly or through a forward proxy. The number of active
    connections is not capped (the router's own concurrency is the limit: a cap would queue requests
    invisibly); idle ones are, by ``max_idle`` and ``IDLE_SECONDS``."""

    def __init__(
        self,
        base_url: str,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        *,
        proxy: str | None = None,
        max_body: int = MAX_BODY,
        max_idle: int = MAX_IDLE,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL must be http(s)://host[:port]: {base_url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        self.host_header = parts.netloc.rpartition("@")[2] if not default_port else self.host
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.ssl = _verifying(ssl_context or ssl.create_default_context()) if self.tls else None
        self.max_body = max_body
        self.max_idle = max_idle
        self.idle: deque[_Connection] = deque()
        self.active: set[_Connection] = set()
        # Where connections go and what the request line names: the origin, or the proxy.
        self.dial = (self.host, self.port)
        self.target_prefix = self.prefix
        self.proxy_auth = ""
        self.connect_request = b""
        if proxy is not None:
            proxied = urlsplit(proxy if "://" in proxy else "http://" + proxy)
            if proxied.scheme != "http" or not proxied.hostname:
                raise ValueError(f"proxy URL must be http://host[:port]: {proxy!r}")
            self.dial = (proxied.hostname, proxied.port or 80)
            if proxied.username is not None:
                credentials = f"{unquote(proxied.username)}:{unquote(proxied.password or '')}"
                self.proxy_auth = "proxy-authorization: Basic " + base64.b64encode(credentials.encode()).decode() + "\r\n"
            authority = f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"
            if self.tls:
                self.connect_request = (
                    f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n{self.proxy_auth}\r\n"
                ).encode("latin-1")
            else:
                self.target_prefix = f"http://{authority}{self.prefix}"

    def head(self, method: str, path_qs: str, headers: dict[str, str], length: int) -> bytes:
        """The request line and headers, ready to write (``host`` and ``content-length`` added here).

        A CR, LF or NUL in the path or in any header name or value would split the request (header
        injection): the block is refused whole. Counting line ends in the finished block is one C-level
        scan, cheaper than checking each field."""
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        proxy_auth = self.proxy_auth if not self.tls else ""
        text = (
            f"{method} {self.target_prefix}{path_qs} HTTP/1.1\r\nhost: {self.host_header}\r\n{fields}{proxy_auth}"
            f"content-length: {length}\r\n\r\n"
        )
        lines = len(headers) + 4 + (1 if proxy_auth else 0)
        if text.count("\n") != lines or text.count("\r") != lines or "\0" in text:
            raise TransportError("invalid", "request path or header contains CR, LF or NUL: not sent")
        return text.encode("latin-1")

    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> Response:
        """Send one request; returns once the response's headers have arrived. Never resends."""
        message = self.head(method, path_qs, headers, len(body)) + body
        conn = self._pooled() or await self._connect()
        return await conn.send(message)

    def _pooled(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()  # most recently used first: the warmest connection
            if conn.usable() and now - conn.idle_since < IDLE_SECONDS:
                self.active.add(conn)
                return conn
            conn.abort()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        tunnel = bool(self.connect_request)
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    *self.dial,
                    ssl=self.ssl if not tunnel else None,
                    server_hostname=self.host if self.tls and not tunnel else None,
                )
                if tunnel:
                    assert self.ssl is not None
                    try:
                        await conn.tunnel(self.connect_request, self.ssl, self.host)
                    except BaseException:
                        conn.abort()
                        raise
        except TimeoutError:
            raise TransportError("connect", "upstream connect timed out") from None
        except ssl.SSLError as exc:
            raise TransportError("connect", f"upstream TLS handshake failed ({_tls_reason(exc)})") from None
        except OSError as exc:
            raise TransportError("connect", f"upstream connection failed ({type(exc).__name__})") from None
        self.active.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        self.active.discard(conn)
        if conn.closed or not conn.keep_alive or conn.buffer:
            conn.abort()
            return
        now = time.monotonic()
        conn.idle_since = now
        self.idle.append(conn)
        # Oldest first: past the cap, or idle too long (the server is about to drop them anyway).
        while self.idle and (len(self.idle) > self.max_idle or now - self.idle[0].idle_since >= IDLE_SECONDS):
            self.idle.popleft().abort()

    def forget(self, conn: _Connection) -> None:
        self.active.discard(conn)

    async def close(self) -> None:
        for conn in (*self.idle, *self.active):
            conn.abort()
        self.idle.clear()
        self.active.clear()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run


def _verifying(context: ssl.SSLContext) -> ssl.SSLContext:
    """Refuse a context that would not verify the upstream's certificate and name."""
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ValueError("upstream TLS must verify the certificate and the hostname")
    return context


def _tls_reason(exc: ssl.SSLError) -> str:
    """The library's short reason (e.g. CERTIFICATE_VERIFY_FAILED, hostname mismatch) without the peer data."""
    verify = getattr(exc, "verify_message", None)
    return f"{exc.reason}: {verify}" if verify else str(exc.reason or type(exc).__name__)
