"""A real ``redis-server`` per test on a free loopback port (never a shared one), which the test may kill
and restart on the same port and data directory (append-only file, fsync always, so a SIGKILL keeps it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def command(self, *args: str) -> bytes:
        """One command over a raw socket (inline protocol), for checking what the routers wrote."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall((" ".join(args) + "\r\n").encode())
            return s.recv(65536)


@pytest.fixture
def redis_server(tmp_path: Path) -> Any:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it from Debian's packages)")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()
