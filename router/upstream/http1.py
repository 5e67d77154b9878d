"""A small HTTP/1.1 client for the upstream: keep-alive connections, one request at a time on each, parsed
with httptools. It does what the proxy needs and nothing else.

Why not aiohttp: the forward path is a few hundred microseconds of router CPU per request, and aiohttp's
general-purpose client (header multidicts, auto headers, payload registry, timer contexts, tracing hooks)
was about a quarter of it (BENCHMARKS.md). Here a request is one prepared header block, one ``write`` and
a parser callback per read.

Semantics the dispatcher relies on:
- Nothing is retried, with one exception that is always safe: a request written on a *reused* keep-alive
  connection that the server had already closed (no byte of response came back) is sent once more on a
  fresh connection. The server never saw it.
- Failures are ``TransportError``s with a ``label``: ``connect`` (no connection, or it closed before any
  response), ``cut`` (closed mid-response), ``malformed`` (not HTTP). Timeouts are the caller's
  (``asyncio.timeout`` around the call); a timed-out or abandoned response closes its connection.
- A response goes back to the pool only when it was read to its end and both sides allow keep-alive.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

import httptools

from router.errors import TransportError

IDLE_SECONDS = 15.0
"""A pooled connection idle longer than this is closed rather than reused (servers drop idle ones)."""
HIGH_WATER = 1 << 20
"""Unread body bytes buffered before the connection stops reading (a slow client slows the upstream)."""


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
        self.transport.write(request)
        try:
            while not self.headers_done:
                await self.wait_data(None)
        except BaseException:
            self.abort()
            raise
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self.raw_headers]
        return Response(self, self.status, headers)

    def abort(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()


def _task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Pool:
    """Keep-alive connections to one origin. Unbounded: the router's own concurrency is the limit."""

    def __init__(self, base_url: str, connect_timeout: float, ssl_context: ssl.SSLContext | None = None) -> None:
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
        self.ssl = (ssl_context or ssl.create_default_context()) if self.tls else None
        self.idle: deque[_Connection] = deque()
        self.active: set[_Connection] = set()

    def head(self, method: str, path_qs: str, headers: dict[str, str], length: int) -> bytes:
        """The request line and headers, ready to write (``host`` and ``content-length`` added here)."""
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        return (
            f"{method} {self.prefix}{path_qs} HTTP/1.1\r\nhost: {self.host_header}\r\n{fields}"
            f"content-length: {length}\r\n\r\n"
        ).encode("latin-1")

    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> Response:
        """Send one request; returns once the response's headers have arrived."""
        message = self.head(method, path_qs, headers, len(body)) + body
        conn = self._pooled()
        if conn is not None:
            try:
                return await conn.send(message)
            except TransportError as exc:
                if exc.label != "connect":
                    raise
                # The server had closed this idle connection: it never saw the request. Once, afresh.
        conn = await self._connect()
        return await conn.send(message)

    def _pooled(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()  # most recently used first: the warmest connection
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                self.active.add(conn)
                return conn
            conn.abort()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise TransportError("connect", "upstream connect timed out") from None
        except OSError as exc:
            raise TransportError("connect", f"upstream connection failed ({type(exc).__name__})") from None
        self.active.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        self.active.discard(conn)
        if conn.closed or not conn.keep_alive or conn.buffer:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self.active.discard(conn)

    async def close(self) -> None:
        for conn in (*self.idle, *self.active):
            conn.abort()
        self.idle.clear()
        self.active.clear()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run
