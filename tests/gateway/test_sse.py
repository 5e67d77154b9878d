"""The SSE framer must find frames however the network splits or merges them, and keep their exact bytes."""

import random

from router.gateway.sse import SSEFramer

STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":7}}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"h\\u00e9llo\\n\\n"}}\n\n'
    b": a comment line\n\n"
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def frames_of(chunks):
    framer = SSEFramer()
    out = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out, framer


def test_whole_stream_in_one_chunk():
    frames, framer = frames_of([STREAM])
    assert [f.event for f in frames] == ["message_start", "ping", "content_block_delta", None, "message_stop"]
    assert b"".join(f.raw for f in frames) == STREAM
    assert framer.pending == b""
    assert frames[0].json()["message"]["usage"]["input_tokens"] == 7


def test_any_split_yields_the_same_frames_and_bytes():
    whole, _ = frames_of([STREAM])
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)])]
        frames, framer = frames_of(chunks)
        assert [(f.event, f.data, f.raw) for f in frames] == [(f.event, f.data, f.raw) for f in whole]
        assert framer.pending == b""


def test_byte_at_a_time():
    frames, _ = frames_of([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert len(frames) == 5
    assert frames[2].json()["delta"]["text"] == "h\u00e9llo\n\n"


def test_crlf_frames_and_multiline_data():
    raw = b"event: x\r\ndata: line1\r\ndata: line2\r\n\r\nevent: y\ndata:nospace\n\n"
    frames, framer = frames_of([raw[:9], raw[9:]])
    assert [(f.event, f.data) for f in frames] == [("x", b"line1\nline2"), ("y", b"nospace")]
    assert b"".join(f.raw for f in frames) == raw


def test_partial_frame_is_held_back():
    frames, framer = frames_of([b"event: ping\ndata: {}\n\nevent: message_st"])
    assert [f.event for f in frames] == ["ping"]
    assert framer.pending == b"event: message_st"


def test_one_huge_frame_in_64k_chunks_is_linear():
    # 16 MiB in 64 KiB chunks: the old framer rescanned its whole tail per chunk (~20 s of CPU here).
    import time

    payload = b'event: content_block_delta\ndata: {"text":"' + b"x" * ((16 << 20) - 100) + b'"}\n\n'
    framer = SSEFramer()
    started = time.process_time()
    frames = []
    for start in range(0, len(payload), 64 << 10):
        frames.extend(framer.feed(payload[start : start + (64 << 10)]))
    assert time.process_time() - started < 1.0
    assert len(frames) == 1 and frames[0].raw == payload and framer.pending == b""


def test_frame_over_the_cap_raises():
    import pytest

    from router.errors import FrameTooLarge, TransportError

    framer = SSEFramer(max_frame_bytes=1000)
    framer.feed(b"event: x\ndata: " + b"y" * 900)
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"y" * 200)
    assert isinstance(info.value, TransportError) and info.value.label == "oversize"


def test_boundaries_split_at_every_offset_across_the_overlap():
    for boundary in (b"\n\n", b"\r\n\r\n", b"\r\n\n", b"\n\r\n"):
        stream = b"event: a\ndata: 1" + boundary + b"event: b\ndata: 2" + boundary
        for cut in range(1, len(stream)):
            for second in range(cut, len(stream)):
                frames, framer = frames_of([stream[:cut], stream[cut:second], stream[second:]])
                assert [f.event for f in frames] == ["a", "b"], (boundary, cut, second)
                assert b"".join(f.raw for f in frames) == stream and framer.pending == b""
