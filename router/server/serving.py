"""Running the app under uvicorn: the one place that sets server options, for the CLI and the tests alike.

Two listeners, one process, one event loop, one ``Services``: the client port (``RouterApp``: the
Anthropic API, ``/livez``, a bare ``/readyz``) and the admin listener (metrics, detailed readiness,
reload, explain, classify, OpenAPI; ``Settings.admin_host``/``admin_port``, off when the port is None).
Each is a uvicorn server with its own connection guards (``router.server.connections``), so a slowloris
on the client port cannot starve the admin port. The client server owns the lifespan and the signals.

Graceful drain: on SIGTERM the client server stops accepting connections at once (so readiness fails and
new requests are refused), lets requests and streams in flight finish for up to ``drain_seconds``. The
admin listener keeps answering meanwhile (``/metrics`` and ``/readyz`` show the drain); once the client
side is done, the admin listener drains in turn (bounded by the same grace period), and only then are the
services torn down. ``DrainingServer`` flags the app as draining, so ``/readyz`` says so on connections
that are still open and ``router_draining`` shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn._compat import asyncio_run

from router.server.app import create_app, create_apps
from router.server.drain import DrainDeadline
from router.server.connections import ConnectionLimits, protocol_factory
from router.settings import Settings
from router.upstream.transport import TransportFactory

log = logging.getLogger("router")


def _config(app: Any, settings: Settings, host: str, port: int, *, loop: str, lifespan: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=loop,
        http=protocol_factory(ConnectionLimits.from_settings(settings)),  # httptools + the connection guards
        ws="none",  # no WebSocket routes: an upgrade request is answered as plain HTTP
        lifespan=lifespan,
        access_log=False,  # the router logs one line per request itself, without query strings
        log_config=None,  # logging is configured by the CLI (router.observability.logs)
        server_header=False,
        proxy_headers=False,  # the router reads no client address; the middleware would cost every request
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]  # a float works (call_later)
        timeout_graceful_shutdown=settings.drain_seconds,  # type: ignore[arg-type]
    )


def uvicorn_config(settings: Settings, *, loop: str = "uvloop", transport: TransportFactory | None = None) -> uvicorn.Config:
    """The client listener alone (no admin listener): for embedding and benchmarks."""
    return _config(DrainDeadline(create_app(settings, transport)), settings, settings.host, settings.port, loop=loop, lifespan="on")


class DrainingServer(uvicorn.Server):
    """A uvicorn server that tells the app it is draining before uvicorn starts shutting down, and that
    takes its start-up heap out of the garbage collector's reach once it is serving."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # runs the lifespan: services, policy and model are built
        freeze_heap()

    def handle_exit(self, sig: int, frame: Any) -> None:
        services = getattr(getattr(self.config.app, "state", None), "services", None)
        if services is not None and not services.draining:
            services.start_draining()
        super().handle_exit(sig, frame)


class _AdminServer(uvicorn.Server):
    """The admin listener: no signal handling of its own (the client server's SIGTERM drives both)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RouterServer:
    """Both listeners in one event loop. ``run()`` blocks (the CLI); ``serve()`` is the coroutine (tests)."""

    def __init__(self, settings: Settings, *, loop: str = "uvloop", transport: TransportFactory | None = None) -> None:
        self.settings = settings
        apps = create_apps(settings, transport, before_teardown=self._stop_admin)
        self.client = DrainingServer(_config(DrainDeadline(apps.client), settings, settings.host, settings.port, loop=loop, lifespan="on"))
        self.admin: _AdminServer | None = None
        if settings.admin_port is not None:
            config = _config(apps.admin, settings, settings.admin_host, settings.admin_port, loop=loop, lifespan="off")
            self.admin = _AdminServer(config)
        self._admin_task: asyncio.Task[None] | None = None
        self._admin_port: int | None = None

    @property
    def started(self) -> bool:
        return self.client.started and (self.admin is None or self.admin.started)

    @property
    def admin_port(self) -> int | None:
        """The admin listener's bound port (the real one when ``admin_port`` was 0); None before it is bound."""
        return self._admin_port

    def run(self, client_sockets: list[socket.socket] | None = None, admin_socket: socket.socket | None = None) -> None:
        """Serve until stopped; the sockets: already bound by the caller (``--workers``)."""
        asyncio_run(self.serve(client_sockets, admin_socket), loop_factory=self.client.config.get_loop_factory())

    def stop(self) -> None:
        """Ask for a graceful shutdown, as SIGTERM would (without marking the services draining first)."""
        self.client.should_exit = True

    async def serve(
        self, client_sockets: list[socket.socket] | None = None, admin_socket: socket.socket | None = None
    ) -> None:
        # Bind the admin port first: if it is taken, fail (exit 3, uvicorn logs why) before any port opens.
        if admin_socket is None and self.admin is not None:
            admin_socket = self.admin.config.bind_socket()
        if admin_socket is not None:
            self._admin_port = int(admin_socket.getsockname()[1])
        client = asyncio.create_task(self.client.serve(sockets=client_sockets))
        # The admin app shares the client app's services: start it once the lifespan built them.
        while not self.client.started and not client.done():
            await asyncio.sleep(0.01)
        if self.admin is not None and self.client.started and not self.client.should_exit:
            self._admin_task = asyncio.create_task(self.admin.serve(sockets=[admin_socket]))  # type: ignore[list-item]
            log.info("admin listener (metrics, readiness details, /v1/router/*) on %s:%s", self.settings.admin_host, self._admin_port)
        elif admin_socket is not None:
            admin_socket.close()
        await client

    async def _stop_admin(self) -> None:
        # Runs in the client lifespan's teardown: the client side has drained; now the admin side does.
        task = self._admin_task
        if task is None or self.admin is None:
            return
        self.admin.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=self.settings.drain_seconds + 1.0)
        except asyncio.TimeoutError:
            log.error("the admin listener did not stop within the drain period")


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit: every client connection is a file
    descriptor, and the common soft default (1,024) lets a thousand idle connections refuse everyone else.
    Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def freeze_heap() -> None:
    """Move every object alive now (modules, classes, the app, policy, model: ~180k objects) into the
    collector's permanent generation. A full collection walks every tracked object: ~170 ms on the bench
    machine with them, microseconds without, and it stalls every request in flight while it runs. The
    objects live about as long as the process anyway. Frozen objects that later become garbage are still
    freed by reference counting; only reference cycles among them (the start-up policy version's, after a
    reload) stay, once."""
    gc.collect()
    gc.freeze()
