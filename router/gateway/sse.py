"""Incremental server-sent-events framing for the relay: find frame boundaries, name events, read data.

Owns splitting an upstream byte stream into complete frames, however the network cut or merged them. It
never re-encodes: each ``Frame`` keeps its exact bytes, and the relay forwards those. JSON in ``data`` is
decoded only to check it is well formed and to read usage or an error.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_BOUNDARY = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(rb"\r?\n")
_decode = msgspec.json.decode


class Frame(msgspec.Struct):
    raw: bytes
    """The frame's bytes, blank-line terminator included, exactly as received."""
    event: str | None
    data: bytes

    def json(self) -> Any:
        """The decoded data. Raises msgspec.DecodeError when it is not JSON."""
        return _decode(self.data)


def parse_frame(raw: bytes, body_end: int) -> Frame:
    event: str | None = None
    data_lines: list[bytes] = []
    for line in _LINE.split(raw[:body_end]):
        if not line or line[:1] == b":":
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"event":
            event = value.decode("utf-8", "replace")
        elif field == b"data":
            data_lines.append(value)
    return Frame(raw=raw, event=event, data=b"\n".join(data_lines))


class SSEFramer:
    """Feed it chunks; it returns the frames completed so far and keeps the partial tail."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    @property
    def pending(self) -> bytes:
        """Bytes of a frame not yet terminated."""
        return self._tail

    def feed(self, chunk: bytes) -> list[Frame]:
        data = self._tail + chunk if self._tail else chunk
        frames: list[Frame] = []
        start = 0
        for match in _BOUNDARY.finditer(data):
            end = match.end()
            frames.append(parse_frame(data[start:end], match.start() - start))
            start = end
        self._tail = data[start:]
        return frames
