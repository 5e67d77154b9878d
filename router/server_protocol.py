"""The HTTP/1.1 server protocol: uvicorn's httptools protocol, writing each response head together with
what follows it.

uvicorn writes a response's head (status line and headers) as soon as the app sends
``http.response.start``, and the body in a second write: two syscalls and, on a connection with
``TCP_NODELAY``, two packets for the client to wake up for. Here the head is held until the next write on
the connection, and leaves with it in one. The app's body write follows the head at once in the same task,
so in practice that is always the body. A head with nothing after it in the same turn of the event loop
(``100 Continue``, or a stream whose first chunk is not ready) is written at the end of that turn, so
nothing waits on a held head.

Only the transport handed to the protocol is wrapped; every other transport call passes through.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "
"""How every response head uvicorn writes begins (it answers HTTP/1.0 requests with HTTP/1.1 too)."""


class HeadHoldingTransport:
    """A transport that holds a response head until the next write (or the end of the loop turn)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif data[: len(_HEAD)] == _HEAD:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (len(self._held) if self._held is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RouterHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``HeadHoldingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadHoldingTransport(transport, self.loop))  # type: ignore[arg-type]
