"""``Expect: 100-continue`` over a real socket: the interim head reaches a client that waits for it before
sending its body, then the answer follows on the same kept-alive connection, twice."""

from __future__ import annotations

import socket
from typing import Any


def test_100_continue_reaches_a_waiting_client_over_a_real_socket(router: Any) -> None:
    body = b'{"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}'
    request = (
        b"POST /v1/messages/count_tokens HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"x-api-key: k\r\nanthropic-version: 2023-06-01\r\nexpect: 100-continue\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as conn:
        for _ in range(2):
            conn.sendall(request)
            interim = conn.recv(65536)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            conn.sendall(body)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += conn.recv(65536)
            assert b"input_tokens" in rest
