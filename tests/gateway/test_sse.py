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
