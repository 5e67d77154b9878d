"""Real servers on loopback for tests: the router (uvicorn) and the simulated upstream, each in a thread
with its own event loop, so tests talk to them over real sockets with real clients."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from router.server.serving import RouterServer
from router.settings import Settings
from router.upstream.transport import TransportFactory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread:
    """An asyncio loop running in a daemon thread; coroutines are submitted from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class RouterThread:
    """``router serve`` in-process: the real app under uvicorn on a free loopback port, and its admin
    listener on another (``admin_url``; Settings(admin_port=None) turns it off)."""

    def __init__(self, settings: Settings, transport: TransportFactory | None = None) -> None:
        if settings.admin_port == 8081:  # the default: tests take a free port instead
            settings = msgspec.structs.replace(settings, admin_port=0)
        self.settings = settings
        self.port = settings.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.router = RouterServer(settings, loop="asyncio", transport=transport)
        self.server = self.router.client
        self.admin_url = ""
        self.thread = threading.Thread(target=self.router.run, daemon=True)

    def start(self) -> RouterThread:
        self.thread.start()
        _wait_until(lambda: self.router.started, f"router on port {self.port}")
        if self.router.admin_port is not None:
            self.admin_url = f"http://127.0.0.1:{self.router.admin_port}"
        return self

    def stop(self) -> None:
        self.router.stop()
        self.thread.join(10)


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.01)
    raise RuntimeError(f"{what} did not start within {timeout}s")
