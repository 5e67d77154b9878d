"""Incremental server-sent-events framing for the relay: find frame boundaries, name events, read data.

Owns splitting an upstream byte stream into complete frames, however the network cut or merged them. It
never re-encodes: each ``Frame`` keeps its exact bytes, and the relay forwards those. JSON in ``data`` is
decoded only to check it is well formed and to read usage or an error. Frames are capped in size
(``MAX_FRAME_BYTES``).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from router.errors import FrameTooLarge

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


MAX_FRAME_BYTES = 16 << 20
"""Largest SSE frame the framer buffers (16 MiB). Real events are a few hundred bytes; a tool input or a
long thinking block can reach megabytes, so the cap is generous, and it bounds what one stream can make
the router hold in memory. A larger frame is an upstream failure (``FrameTooLarge``)."""

# A frame boundary is at most four bytes (``\r\n\r\n``): a boundary not complete in the bytes already
# scanned starts within their last three.
_OVERLAP = 3


class SSEFramer:
    """Feed it chunks; it returns the frames completed so far and keeps the partial tail.

    Linear in the bytes fed: each call scans only the new bytes (plus three of overlap), never the
    whole tail again, so one huge frame arriving in many small chunks costs its size, not its size
    squared (issue 13, defect 15)."""

    __slots__ = ("_scanned", "_tail", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._tail = bytearray()
        self._scanned = 0
        self.max_frame_bytes = max_frame_bytes

    @property
    def pending(self) -> bytes:
        """Bytes of a frame not yet terminated."""
        return bytes(self._tail)

    def feed(self, chunk: bytes) -> list[Frame]:
        tail = self._tail
        if tail:
            tail += chunk
            data: bytes | bytearray = tail
            scan_from = max(self._scanned - _OVERLAP, 0)
        else:
            data = chunk  # the common case: a chunk that starts a frame is scanned as it came, uncopied
            scan_from = 0
        frames: list[Frame] = []
        start = 0
        for match in _BOUNDARY.finditer(data, scan_from):
            end = match.end()
            frames.append(parse_frame(bytes(data[start:end]), match.start() - start))
            start = end
        if data is tail:
            if start:
                del tail[:start]
        elif start < len(data):
            tail += data[start:]
        self._scanned = len(tail)
        if len(tail) > self.max_frame_bytes:
            raise FrameTooLarge(f"upstream sent an event larger than {self.max_frame_bytes} bytes")
        return frames
