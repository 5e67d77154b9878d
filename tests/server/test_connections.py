"""Inbound connection guards (issue 13, defect 11): slow and idle connections cannot starve new clients,
a connection that drips its headers or body is closed after its deadline with a 408 envelope, and past
the connection cap a new connection gets a 529 envelope at once. Raw sockets for the attackers, the
real SDK for the clients that must keep being served."""

from __future__ import annotations

import json
import resource
import socket
import time

import anthropic
import pytest

from router.server.serving import raise_fd_limit
from tests.conftest import sdk_client

MESSAGES = [{"role": "user", "content": "Say hello."}]


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(s: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def envelope(data: bytes) -> tuple[int, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


SLOW_HEADERS = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\n"
SLOW_BODY = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"mo"


def test_a_thousand_slow_and_idle_connections_do_not_starve_new_clients(make_router):
    # Every connection is two descriptors here (the test's end and the router's, one process).
    if raise_fd_limit() < 2600:
        pytest.skip(f"open-file limit {resource.getrlimit(resource.RLIMIT_NOFILE)} too low for 1,000 connections")
    router = make_router(header_timeout=30.0, body_timeout=30.0)
    attackers: list[socket.socket] = []
    try:
        for index in range(1000):
            s = connect(router.port)
            if index % 3 == 1:
                s.sendall(SLOW_HEADERS)
            elif index % 3 == 2:
                s.sendall(SLOW_BODY)
            attackers.append(s)
        client = sdk_client(router)
        for _ in range(5):
            assert client.messages.create(model="haiku", max_tokens=8, messages=MESSAGES).content
        assert client.messages.count_tokens(model="haiku", messages=MESSAGES).input_tokens > 0
    finally:
        for s in attackers:
            s.close()


def test_slow_headers_and_bodies_and_silent_connections_are_closed_after_their_deadline(make_router):
    router = make_router(header_timeout=0.5, body_timeout=0.5)
    silent, slow_headers, slow_body = connect(router.port), connect(router.port), connect(router.port)
    slow_headers.sendall(SLOW_HEADERS)
    slow_body.sendall(SLOW_BODY)
    for s, what in ((silent, "request headers"), (slow_headers, "request headers"), (slow_body, "request body")):
        data, took = read_until_closed(s, timeout=5)
        status, body = envelope(data)
        assert status == 408 and body["type"] == "error" and what in body["error"]["message"], data
        assert took < 3
        s.close()
    # A client within the limits is served on the same router, keep-alive included.
    client = sdk_client(router)
    for _ in range(2):
        assert client.messages.create(model="haiku", max_tokens=8, messages=MESSAGES).content


def test_past_the_connection_cap_a_new_connection_gets_an_overloaded_envelope(make_router):
    router = make_router(max_connections=4, header_timeout=30.0)
    held = [connect(router.port) for _ in range(4)]
    time.sleep(0.1)  # the router has accepted them
    try:
        extra = connect(router.port)
        data, _ = read_until_closed(extra, timeout=5)
        status, body = envelope(data)
        assert status == 529 and body["error"]["type"] == "overloaded_error"
        assert b"retry-after: 1" in data
    finally:
        for s in held:
            s.close()
    # Capacity comes back as the held connections go.
    time.sleep(0.2)
    assert sdk_client(router).messages.create(model="haiku", max_tokens=8, messages=MESSAGES).content


def test_the_admin_listener_keeps_answering_while_the_client_port_is_full(make_router):
    router = make_router(max_connections=2, header_timeout=30.0)
    held = [connect(router.port) for _ in range(2)]
    try:
        time.sleep(0.1)
        with pytest.raises(anthropic.APIStatusError) as info:
            sdk_client(router).messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
        assert info.value.status_code == 529
        import urllib.request

        with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
            assert resp.status == 200
    finally:
        for s in held:
            s.close()


def test_a_keep_alive_connection_that_stalls_in_its_next_request_gets_a_408(make_router):
    router = make_router(header_timeout=0.5)
    s = connect(router.port)
    s.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
    s.settimeout(5)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    s.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\n")  # the next request's headers never end
    data, took = read_until_closed(s, timeout=5)
    status, body = envelope(data)
    assert status == 408 and took < 3
