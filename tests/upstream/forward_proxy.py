"""A small forward proxy for tests, on loopback: absolute-form HTTP requests and CONNECT tunnels.

Records each request line it handled (``seen``) and answers ``407`` when ``require_auth`` is set and the
request carries no matching ``Proxy-Authorization``. Bytes are piped both ways until either side closes;
one request per client connection is enough for what the tests check (the router's pool reconnects).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from urllib.parse import urlsplit


class ForwardProxy:
    def __init__(self, require_auth: tuple[str, str] | None = None) -> None:
        self.seen: list[str] = []
        self.auth_seen: list[str | None] = []
        self.require_auth = require_auth
        self.port = 0

    async def start(self) -> ForwardProxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            self.seen.append(f"{method} {target}")
            self.auth_seen.append(headers.get("proxy-authorization"))
            if self.require_auth is not None:
                expected = "Basic " + base64.b64encode(":".join(self.require_auth).encode()).decode()
                if headers.get("proxy-authorization") != expected:
                    writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
                    return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await writer.drain()
            else:
                url = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
                path = url.path + ("?" + url.query if url.query else "")
                kept = [line for line in lines[1:] if line and not line.lower().startswith("proxy-authorization")]
                fields = "".join(line + "\r\n" for line in kept)
                up_writer.write(f"{method} {path} HTTP/1.1\r\n{fields}\r\n".encode("latin-1"))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
