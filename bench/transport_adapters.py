"""The router's upstream transport interface, implemented over candidate HTTP client libraries, so they can be
measured (``bench.upstream_client``) and checked on the same forward path as ``router.upstream.http1.Pool``.

The interface (what ``dispatch`` and ``stream`` use)::

    class Response(Protocol):
        status: int
        headers: list[tuple[str, str]]          # as received; repeated headers kept as repeated entries
        def get(self, name: str) -> str | None   # case-insensitive first value
        async def read(self) -> bytes            # whole body (JSON answers, error bodies)
        async def chunk(self, idle_timeout: float | None) -> bytes  # next body chunk; b"" at the end;
                                                 # raises TimeoutError on idle timeout
        def close(self) -> None                  # release (if fully read) or abort the connection
    class Transport(Protocol):
        async def request(self, method, path_qs, headers: dict[str, str], body: bytes) -> Response
        async def close(self) -> None

Common semantics of the adapters (as ``http1``): failures are ``router.errors.TransportError`` with a label
(``connect``: no connection or no response at all; ``cut``: the connection ended mid-response; ``malformed``:
not HTTP; ``too_large``: the body passed ``max_body``); the overall deadline is the caller's
(``asyncio.timeout`` around the call; a cancelled request must abort its connection); redirects are not
followed and bodies are not decompressed (the relay passes bytes through). ``max_body`` caps what ``read``
buffers (Content-Length checked before reading, then counted); streamed chunks are not capped here (the
router caps the frames it holds).

Per library:

- ``Http1Transport`` is ``router.upstream.http1.Pool`` itself (it already has this interface).
- ``AiohttpTransport``: ``ClientSession.request`` with ``proxy=`` the upstream's proxy from HTTP(S)_PROXY /
  NO_PROXY, resolved once at construction (``trust_env=True`` costs two worker-thread hops per request),
  ``ssl=`` an ``ssl.SSLContext`` (CA bundle), ``TCPConnector(limit, keepalive_timeout)``. ``chunk`` is
  ``StreamReader.readany()`` under ``asyncio.timeout(idle_timeout)``; ``close`` is ``release()`` when the
  body was read to its end, else ``close()`` (which closes the connection).
- ``PyreqwestTransport``: a ``pyreqwest`` ``Client`` (reqwest/hyper on a Tokio runtime thread). Every request
  is built streamed (``build_streamed``), since the adapter cannot know whether the caller will ``read`` or
  ``chunk``, with ``streamed_read_buffer_limit(0)``: by default (64 KiB) the response is returned only once
  64 KiB of body or its end has arrived, which would hold an SSE stream's first events back indefinitely. ``chunk`` is ``body_reader.read_chunk()`` under ``asyncio.timeout`` (cancelling the awaitable
  drops the Rust future). ``close`` is synchronous in this interface but ``StreamRequest.__aexit__`` is a
  coroutine: a fully read body has already given its connection back to hyper's pool (checked: the next
  request reuses it), so ``close`` only drops the references; an unfinished one is aborted by a task running
  ``__aexit__`` (dropping the objects alone leaves the connection open). ``Bytes`` chunks are copied to
  ``bytes``.
- ``RnetTransport``: an ``rnet`` ``Client`` (wreq, a reqwest fork with TLS fingerprinting). ``chunk`` is the
  ``Streamer``'s ``__anext__`` under ``asyncio.timeout``; ``close`` of an unfinished response calls its
  ``close()``, which starts at once (it returns a Future). rnet's own timeouts are whole seconds.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import timedelta
from typing import Any, Protocol

from router.errors import TransportError

from router.upstream.http1 import Pool as _Http1Pool

MAX_BODY = 64 << 20
"""Default cap on a body that ``read`` buffers (64 MiB: well above the API's largest answers)."""
IDLE_SECONDS = 15.0
"""Pooled connections idle longer than this are closed (as ``http1``)."""


class Response(Protocol):
    status: int
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None: ...
    async def read(self) -> bytes: ...
    async def chunk(self, idle_timeout: float | None) -> bytes: ...
    def close(self) -> None: ...


class Transport(Protocol):
    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> Response: ...
    async def close(self) -> None: ...


def _too_large(limit: int) -> TransportError:
    return TransportError("too_large", f"upstream response larger than {limit} bytes")


def _declared_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# -- http1 ------------------------------------------------------------------------------------------------


class Http1Transport(_Http1Pool):  # type: ignore[misc, valid-type]
    """``router.upstream.http1.Pool`` unchanged: it is already a ``Transport`` (no size cap, no proxy, see its docs)."""

    def __init__(
        self, base_url: str, connect_timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None, **_: Any
    ) -> None:
        super().__init__(base_url, connect_timeout, ssl_context)


# -- aiohttp ----------------------------------------------------------------------------------------------


class AiohttpResponse:
    __slots__ = ("_done", "_limit", "_resp", "headers", "status")

    def __init__(self, resp: Any, limit: int) -> None:
        self._resp = resp
        self._limit = limit
        self._done = False
        self.status: int = resp.status
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]

    def get(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    async def read(self) -> bytes:
        import aiohttp

        resp = self._resp
        limit = self._limit
        declared = _declared_length(resp.headers.get("content-length"))
        try:
            if declared is not None:
                if declared > limit:
                    self.close()
                    raise _too_large(limit)
                data = await resp.read()
            else:
                parts: list[bytes] = []
                size = 0
                while chunk := await resp.content.readany():
                    size += len(chunk)
                    if size > limit:
                        self.close()
                        raise _too_large(limit)
                    parts.append(chunk)
                data = b"".join(parts)
        except aiohttp.ClientPayloadError as exc:
            self.close()
            raise TransportError("cut", f"upstream connection closed mid-response ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            self.close()
            raise TransportError("cut", f"upstream read failed ({type(exc).__name__})") from None
        self._release()
        return data

    async def chunk(self, idle_timeout: float | None) -> bytes:
        import aiohttp

        try:
            if idle_timeout is None:
                data = await self._resp.content.readany()
            else:
                async with asyncio.timeout(idle_timeout):
                    data = await self._resp.content.readany()
        except aiohttp.ClientError as exc:
            self.close()
            raise TransportError("cut", f"upstream connection closed mid-response ({type(exc).__name__})") from None
        if not data:
            self._release()
        return data

    def _release(self) -> None:
        if not self._done:
            self._done = True
            self._resp.release()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()  # closes the connection: it is not reused mid-body


class AiohttpTransport:
    def __init__(
        self,
        base_url: str,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_body: int = MAX_BODY,
        pool_limit: int = 0,
        idle_seconds: float = IDLE_SECONDS,
        trust_env: bool = False,
    ) -> None:
        import aiohttp
        import yarl
        from aiohttp.helpers import get_env_proxy_for_url

        self._aiohttp = aiohttp
        self._yarl = yarl
        self.base = base_url.rstrip("/")
        self.max_body = max_body
        # The proxy for the one upstream, from HTTP(S)_PROXY / NO_PROXY, resolved once: aiohttp's own
        # ``trust_env=True`` looks it (and ~/.netrc) up in a worker thread on every request, ~0.5 ms of CPU.
        self.proxy: Any = None
        self.proxy_auth: Any = None
        if not trust_env:
            try:
                self.proxy, self.proxy_auth = get_env_proxy_for_url(yarl.URL(self.base))
            except LookupError:
                pass
        connector = aiohttp.TCPConnector(
            limit=pool_limit, limit_per_host=0, keepalive_timeout=idle_seconds, ssl=ssl_context or True
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            trust_env=trust_env,  # True: aiohttp's per-request env proxy and netrc look-up (slow, see above)
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        )

    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> AiohttpResponse:
        aiohttp = self._aiohttp
        url = self._yarl.URL(self.base + path_qs, encoded=True)  # as the client sent it: no re-quoting
        try:
            resp = await self.session.request(
                method, url, data=body, headers=headers, allow_redirects=False, proxy=self.proxy,
                proxy_auth=self.proxy_auth,
            )
        except aiohttp.ClientConnectorError as exc:
            raise TransportError("connect", f"upstream connection failed ({type(exc).__name__})") from None
        except aiohttp.ServerDisconnectedError:
            raise TransportError("connect", "upstream closed the connection before responding") from None
        except aiohttp.ClientResponseError as exc:  # bad status line or headers
            raise TransportError("malformed", f"upstream sent a response that is not valid HTTP ({exc.message})") from None
        except aiohttp.ClientError as exc:
            raise TransportError("connect", f"upstream request failed ({type(exc).__name__})") from None
        except TimeoutError:
            raise TransportError("connect", "upstream connect timed out") from None
        return AiohttpResponse(resp, self.max_body)

    async def close(self) -> None:
        await self.session.close()


# -- pyreqwest --------------------------------------------------------------------------------------------


def _pyreqwest_error(exc: BaseException, during_body: bool) -> TransportError:
    from pyreqwest import exceptions as E

    name = type(exc).__name__
    if isinstance(exc, E.ConnectError | E.ConnectTimeoutError):
        return TransportError("connect", f"upstream connection failed ({name})")
    if isinstance(exc, E.DecodeError):
        return TransportError("malformed", f"upstream sent a response that is not valid HTTP ({name})")
    if during_body:
        return TransportError("cut", f"upstream connection closed mid-response ({name})")
    return TransportError("connect", f"upstream request failed ({name})")


class PyreqwestResponse:
    __slots__ = ("_done", "_limit", "_reader", "_req", "_resp", "headers", "status")

    def __init__(self, req: Any, resp: Any, limit: int) -> None:
        self._req = req
        self._resp = resp
        self._reader = resp.body_reader
        self._limit = limit
        self._done = False
        self.status: int = resp.status
        self.headers: list[tuple[str, str]] = list(resp.headers.items())  # names lower-case (hyper)

    def get(self, name: str) -> str | None:
        return self._resp.get_header(name)

    async def read(self) -> bytes:
        from pyreqwest.exceptions import RequestError

        limit = self._limit
        declared = _declared_length(self._resp.get_header("content-length"))
        try:
            if declared is not None:
                if declared > limit:
                    self.close()
                    raise _too_large(limit)
                data = (await self._reader.bytes()).to_bytes()
            else:
                parts: list[bytes] = []
                size = 0
                while (chunk := await self._reader.read_chunk()) is not None:
                    size += len(chunk)
                    if size > limit:
                        self.close()
                        raise _too_large(limit)
                    parts.append(chunk.to_bytes())
                data = b"".join(parts)
        except RequestError as exc:
            self.close()
            raise _pyreqwest_error(exc, True) from None
        self._finish()
        return data

    async def chunk(self, idle_timeout: float | None) -> bytes:
        from pyreqwest.exceptions import RequestError

        try:
            if idle_timeout is None:
                data = await self._reader.read_chunk()
            else:
                async with asyncio.timeout(idle_timeout):
                    data = await self._reader.read_chunk()
        except RequestError as exc:
            self.close()
            raise _pyreqwest_error(exc, True) from None
        if data is None:
            self._finish()
            return b""
        return data.to_bytes()

    def _finish(self) -> None:
        # The body was read to its end: hyper has already put the connection back in its pool.
        self._done = True
        self._req = self._resp = self._reader = None

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        req = self._req
        self._req = self._resp = self._reader = None
        if req is not None:  # dropping the objects does not abort the connection; __aexit__ does (a Rust
            # coroutine that runs only when awaited, hence the task)
            asyncio.get_running_loop().create_task(req.__aexit__(None, None, None))


class PyreqwestTransport:
    def __init__(
        self,
        base_url: str,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_body: int = MAX_BODY,
        ca_pem: bytes | None = None,
        pool_limit: int | None = None,
        idle_seconds: float = IDLE_SECONDS,
        max_idle: int | None = None,
        prefetch: int = 0,
    ) -> None:
        from pyreqwest.client import ClientBuilder

        if ssl_context is not None:
            raise ValueError("pyreqwest takes a PEM CA bundle (ca_pem), not an ssl.SSLContext")
        self.base = base_url.rstrip("/")
        self.max_body = max_body
        self.prefetch = prefetch
        builder = (
            ClientBuilder()
            .connect_timeout(timedelta(seconds=connect_timeout))
            .pool_idle_timeout(timedelta(seconds=idle_seconds))
            .max_connections(pool_limit)
            .follow_redirects(False)
            .referer(False)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .http1_lower_case_headers()
        )
        if max_idle is not None:
            builder = builder.pool_max_idle_per_host(max_idle)
        if ca_pem is not None:
            builder = builder.add_root_certificate_pem(ca_pem)
        self.client = builder.build()

    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> PyreqwestResponse:
        from pyreqwest.exceptions import RequestError

        req = (
            self.client.request(method, self.base + path_qs)
            .headers(headers)
            .body_bytes(body)
            .streamed_read_buffer_limit(self.prefetch)
            .build_streamed()
        )
        try:
            resp = await req.__aenter__()
        except RequestError as exc:
            raise _pyreqwest_error(exc, False) from None
        return PyreqwestResponse(req, resp, self.max_body)

    async def close(self) -> None:
        await self.client.close()


# -- rnet -------------------------------------------------------------------------------------------------


def _swallow(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class RnetResponse:
    __slots__ = ("_done", "_limit", "_resp", "_stream", "headers", "status")

    def __init__(self, resp: Any, limit: int) -> None:
        self._resp = resp
        self._stream: Any = None
        self._limit = limit
        self._done = False
        self.status: int = resp.status
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.items()]

    def get(self, name: str) -> str | None:
        value = self._resp.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    async def read(self) -> bytes:
        limit = self._limit
        declared = _declared_length(self.get("content-length"))
        try:
            if declared is not None:
                if declared > limit:
                    self.close()
                    raise _too_large(limit)
                data = await self._resp.bytes()
            else:
                parts: list[bytes] = []
                size = 0
                while chunk := await self.chunk(None):
                    size += len(chunk)
                    if size > limit:
                        self.close()
                        raise _too_large(limit)
                    parts.append(chunk)
                data = b"".join(parts)
        except TransportError:
            raise
        except Exception as exc:  # rnet's errors share no base class but Exception
            self.close()
            raise TransportError("cut", f"upstream connection closed mid-response ({type(exc).__name__})") from None
        self._done = True
        return data

    async def chunk(self, idle_timeout: float | None) -> bytes:
        if self._stream is None:
            self._stream = self._resp.stream()
        try:
            if idle_timeout is None:
                data = await self._stream.__anext__()
            else:
                async with asyncio.timeout(idle_timeout):
                    data = await self._stream.__anext__()
        except StopAsyncIteration:
            self._done = True
            return b""
        except TimeoutError:
            raise
        except Exception as exc:
            self.close()
            raise TransportError("cut", f"upstream connection closed mid-response ({type(exc).__name__})") from None
        return bytes(data)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._stream = None
        # rnet's close() starts closing at once and returns an asyncio.Future (not a coroutine) for its end.
        self._resp.close().add_done_callback(_swallow)


class RnetTransport:
    def __init__(
        self,
        base_url: str,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_body: int = MAX_BODY,
        ca_path: str | None = None,
        pool_limit: int | None = None,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        import rnet

        if ssl_context is not None:
            raise ValueError("rnet takes a CA file path (ca_path), not an ssl.SSLContext")
        self._rnet = rnet
        self.base = base_url.rstrip("/")
        self.max_body = max_body
        kwargs: dict[str, Any] = {}
        if ca_path is not None:
            from pathlib import Path

            kwargs["verify"] = Path(ca_path)
        if pool_limit is not None:
            kwargs["pool_max_size"] = pool_limit
        self.client = rnet.Client(
            connect_timeout=max(1, round(connect_timeout)),
            pool_idle_timeout=max(1, round(idle_seconds)),
            allow_redirects=False,
            referer=False,
            gzip=False,
            brotli=False,
            deflate=False,
            zstd=False,
            **kwargs,
        )
        self._methods = {m: getattr(rnet.Method, m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}

    async def request(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> RnetResponse:
        try:
            resp = await self.client.request(self._methods[method], self.base + path_qs, headers=headers, body=body)
        except self._rnet.ConnectionError as exc:
            raise TransportError("connect", f"upstream connection failed ({type(exc).__name__})") from None
        except self._rnet.TimeoutError:
            raise TransportError("connect", "upstream connect timed out") from None
        except (self._rnet.RequestError, self._rnet.ConnectionResetError, self._rnet.BodyError) as exc:
            raise TransportError("connect", f"upstream request failed ({type(exc).__name__})") from None
        return RnetResponse(resp, self.max_body)

    async def close(self) -> None:
        return None


TRANSPORTS: dict[str, type] = {
    "http1": Http1Transport,
    "aiohttp": AiohttpTransport,
    "pyreqwest": PyreqwestTransport,
    "rnet": RnetTransport,
}


def transport(name: str, base_url: str, connect_timeout: float = 10.0, **options: Any) -> Transport:
    """The named transport to ``base_url``."""
    return TRANSPORTS[name](base_url, connect_timeout, **options)  # type: ignore[no-any-return]


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in ("aiohttp", "pyreqwest", "rnet", "httptools", "uvloop"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
