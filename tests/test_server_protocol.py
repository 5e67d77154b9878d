"""The server protocol's transport: a response head leaves in one write with what follows it, never later
than the end of the loop turn, and in order."""

from __future__ import annotations

import asyncio
import socket

from router.server_protocol import HeadHoldingTransport


class Recording:
    """The transport under the wrapper: records each write as the kernel would get it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_leave_in_one_write() -> None:
    async def main() -> list[bytes]:
        under = Recording()
        transport = HeadHoldingTransport(under, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(HEAD)
        assert under.writes == []
        assert transport.get_write_buffer_size() == len(HEAD)
        transport.write(b"{}")
        await asyncio.sleep(0)  # the end-of-turn flush finds nothing left
        return under.writes

    assert asyncio.run(main()) == [HEAD + b"{}"]


def test_a_head_alone_leaves_at_the_end_of_the_loop_turn() -> None:
    """``100 Continue`` (or a head whose body is not ready) must not wait for a write that may never come."""

    async def main() -> list[bytes]:
        under = Recording()
        transport = HeadHoldingTransport(under, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0)
        return under.writes

    assert asyncio.run(main()) == [b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_stream_chunks_are_not_held_and_order_is_kept() -> None:
    async def main() -> list[bytes]:
        under = Recording()
        transport = HeadHoldingTransport(under, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        transport.write(b"5\r\nfirst\r\n")
        transport.write(b"6\r\nsecond\r\n")
        return under.writes

    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    assert asyncio.run(main()) == [head + b"5\r\nfirst\r\n", b"6\r\nsecond\r\n"]


def test_close_flushes_a_held_head_and_abort_drops_it() -> None:
    async def main() -> tuple[Recording, Recording]:
        loop = asyncio.get_running_loop()
        closed, aborted = Recording(), Recording()
        one = HeadHoldingTransport(closed, loop)  # type: ignore[arg-type]
        one.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        one.close()
        two = HeadHoldingTransport(aborted, loop)  # type: ignore[arg-type]
        two.write(HEAD)
        two.abort()
        await asyncio.sleep(0)  # the scheduled flushes run and must write nothing more
        return closed, aborted

    closed, aborted = asyncio.run(main())
    assert closed.writes == [b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"] and closed.closed
    assert aborted.writes == [] and aborted.aborted


def test_other_transport_calls_pass_through() -> None:
    async def main() -> object:
        transport = HeadHoldingTransport(Recording(), asyncio.get_running_loop())  # type: ignore[arg-type]
        return transport.get_extra_info("peername")

    assert asyncio.run(main()) == ("127.0.0.1", 5)


def test_100_continue_reaches_a_waiting_client_over_a_real_socket(router) -> None:
    """A client that waits for ``100 Continue`` before sending its body gets it: the interim head has no
    body after it, so only the end-of-turn flush sends it. Then the answer, on a kept-alive connection."""
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
