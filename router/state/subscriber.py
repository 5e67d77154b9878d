"""A Redis pub/sub subscription whose messages are applied the moment their bytes are read.

Owns one connection in subscribe mode, kept open for the life of the process: connect (TLS and
credentials exactly as the main pool's URL says), authenticate, ``SUBSCRIBE``, then hand every message's
payload to a synchronous callback from inside ``data_received``. That is the point of not using a reader
task: when a publish (made before another replica answered its client) and a client's next request reach
this process in the same event-loop turn, the message is applied before any request task runs, so the
request sees it. Parsing is hiredis' (the maintained RESP parser redis-py uses too).

On every (re)subscription ``on_resync`` runs (a full re-read of what the channel announces changes to),
and only then is the subscription ``live``; while it is not (connecting, disconnected, Redis gone), callers
must read Redis instead of trusting what they were told. A ``PING`` every few seconds on the subscribed
connection finds a half-open socket; any failure closes it, and it is retried every second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
import redis.asyncio as aioredis

log = logging.getLogger("router.state")

RETRY_SECONDS = 1.0
PING_SECONDS = 5.0


def _command(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, on_message: Callable[[str], None]) -> None:
        self._on_message = on_message
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._replies: asyncio.Queue[Any] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError:
                self.abort()
                return
            if reply is False:
                return
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                try:
                    self._on_message(reply[2])
                except Exception as exc:  # noqa: BLE001 -- a bad payload must not kill the subscription
                    log.error("state subscription: message not applied: %s", type(exc).__name__)
            else:
                self._replies.put_nowait(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def call(self, timeout: float, *args: str) -> Any:
        assert self.transport is not None
        self.transport.write(_command(*args))
        reply = await asyncio.wait_for(self._replies.get(), timeout)
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply


class Subscription:
    def __init__(
        self,
        pool: aioredis.ConnectionPool,
        channel: str,
        on_message: Callable[[str], None],
        on_resync: Callable[[], Awaitable[None]],
        timeout: float,
    ) -> None:
        self.channel = channel
        self._pool = pool
        self._on_message = on_message
        self._on_resync = on_resync
        self._timeout = timeout
        self.live = False
        """Subscribed and re-read since: what was published is known here."""
        self.connects = 0
        self._quiet = False
        self._task: asyncio.Task[None] | None = None
        self._protocol: _Protocol | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self.live = False
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._protocol is not None:
            self._protocol.abort()

    def drop(self) -> None:
        """Stop trusting the subscription and reconnect (the caller saw Redis fail)."""
        self.live = False
        if self._protocol is not None:
            self._protocol.abort()

    async def _connect(self) -> _Protocol:
        kwargs = self._pool.connection_kwargs
        loop = asyncio.get_running_loop()
        ssl_context = None
        if issubclass(self._pool.connection_class, aioredis.SSLConnection):
            ssl_context = self._pool.connection_class(**kwargs).ssl_context.get()  # the pool's own TLS settings
        protocol = _Protocol(self._on_message)
        host = kwargs.get("host", "localhost")
        await asyncio.wait_for(
            loop.create_connection(
                lambda: protocol, host, kwargs.get("port", 6379), ssl=ssl_context,
                server_hostname=host if ssl_context is not None else None,
            ),
            self._timeout,
        )
        try:
            password, username = kwargs.get("password"), kwargs.get("username")
            if password:
                await protocol.call(self._timeout, "AUTH", *((username,) if username else ()), password)
            await protocol.call(self._timeout, "SUBSCRIBE", self.channel)
        except BaseException:
            protocol.abort()
            raise
        return protocol

    async def _run(self) -> None:
        while True:
            try:
                self._protocol = protocol = await self._connect()
                await self._on_resync()  # after SUBSCRIBE: nothing published from here on is missed
                self.live = True
                self.connects += 1
                if self._quiet:
                    log.info("state subscription to %s live again", self.channel)
                self._quiet = False
                while not protocol.closed.done():
                    done, _ = await asyncio.wait([protocol.closed], timeout=PING_SECONDS)
                    if not done:
                        await protocol.call(self._timeout, "PING")  # subscribed: answers ["pong", ""]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- any failure: drop, say so once per outage, retry
                if not self._quiet:
                    log.info("state subscription to %s not live (%s): reading Redis per request", self.channel,
                             type(exc).__name__)
                self._quiet = True
            finally:
                self.live = False
                if self._protocol is not None:
                    self._protocol.abort()
            await asyncio.sleep(RETRY_SECONDS)
