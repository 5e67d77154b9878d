"""Property-based fuzzing of the request path (issue 13): generated bodies, headers, paths and SSE frame
splits against a real router in front of the simulator.

What must hold for every generated request: an answer arrives (no hang, no dropped connection); no 5xx
from the router itself (the simulator injects no failures here, so there is no upstream error to relay);
every error is Anthropic's envelope; every 200 stream ends with ``message_stop`` or an ``event: error``
frame; nothing stays in flight afterwards.

``ROUTER_FUZZ_EXAMPLES`` sets the number of generated requests (default 2000, about 15-30 s here);
``make fuzz`` runs it long. The run is derandomized so CI failures reproduce.
"""

from __future__ import annotations

import http.client
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.gateway.sse import SSEFramer
from tests.conftest import CLIENT_KEY
from tests.gateway.test_stream_accounting import metric

EXAMPLES = int(os.environ.get("ROUTER_FUZZ_EXAMPLES", "2000"))
TIMEOUT_S = 10.0  # far above any answer the fast simulator gives: reaching it is a hang

MODELS = st.one_of(
    st.sampled_from(["auto", "haiku", "sonnet", "opus", "claude-opus-4-8", "claude-sonnet-4-6", "claude-x-9"]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=250, max_size=300),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=30))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
CONTENT = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=80)}),
            st.fixed_dictionaries({"type": st.sampled_from(["image", "document", "tool_result"]), "source": JSON_VALUES}),
            JSON_VALUES,
        ),
        max_size=3,
    ),
    JSON_VALUES,
)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]), "content": CONTENT})
BODY = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(MODELS, SCALARS),
        "max_tokens": st.one_of(st.integers(-5, 70_000), SCALARS),
        "messages": st.one_of(st.lists(MESSAGE, max_size=3), SCALARS),
        "stream": st.one_of(st.booleans(), SCALARS),
        "system": st.one_of(st.text(max_size=40), JSON_VALUES),
        "tools": st.one_of(st.lists(JSON_VALUES, max_size=2), SCALARS),
        "thinking": st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["enabled", "adaptive", "disabled"])}), SCALARS),
        "metadata": JSON_VALUES,
        "unknown_field": JSON_VALUES,
    },
)
WELL_FORMED = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["auto", "haiku", "sonnet", "opus", "claude-haiku-4-5"]),
        "max_tokens": st.integers(1, 64),
        "messages": st.lists(MESSAGE, min_size=1, max_size=2),
        "stream": st.booleans(),
    }
)
RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.integers(1, 3000).map(lambda depth: b'{"model":"opus","messages":' + b"[" * depth + b"]" * depth + b"}"),
    st.text(max_size=100).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.just(b'{"model":"opus","max_tokens":8,"messages":[{"role":"user","content":"\xff\xfe"}]}'),
)
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["anthropic-beta", "anthropic-version", "x-router-policy", "x-custom", "accept", "x-api-key", "authorization"]),
        HEADER_VALUE,
    ),
    max_size=5,
)
REQUEST = st.tuples(
    st.sampled_from(["/v1/messages", "/v1/messages", "/v1/messages/count_tokens", "/v1/messages?beta=true"]),
    st.one_of(BODY.map(lambda b: json.dumps(b).encode()), WELL_FORMED.map(lambda b: json.dumps(b).encode()), RAW_BODIES),
    HEADERS,
)


class Client:
    """One keep-alive connection to the router, reopened whenever the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.sent = 0

    def request(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, dict[str, str], bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        conn = self.conn
        conn.putrequest("POST", path, skip_accept_encoding=True)
        names = {name for name, _ in headers}
        if "x-api-key" not in names and "authorization" not in names:
            conn.putheader("x-api-key", CLIENT_KEY)
        for name, value in [("content-type", "application/json"), ("content-length", str(len(body))), *headers]:
            conn.putheader(name, value)
        conn.endheaders(body)
        self.sent += 1
        resp = conn.getresponse()  # a hang raises TimeoutError: a failed property
        data = resp.read()
        result = resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        if resp.will_close:
            conn.close()
            self.conn = None
        return result


def check_answer(status: int, headers: dict[str, str], data: bytes) -> None:
    assert status < 500, (status, data[:300])
    if status >= 400:
        envelope = json.loads(data)
        assert envelope["type"] == "error" and envelope["error"]["type"] and "request_id" in envelope
        return
    if headers.get("content-type", "").startswith("text/event-stream"):
        frames = SSEFramer().feed(data)
        assert frames and frames[-1].event in ("message_stop", "error"), data[-300:]
    else:
        json.loads(data)


def test_fuzz_request_path(make_router, sim):
    router = make_router(request_timeout=TIMEOUT_S, first_content_timeout=5.0)
    # Wire variations a client never sees, on a share of the answers: frames split across reads, comments.
    sim.faults(
        {"kind": "fragmented", "probability": 0.02},
        {"kind": "comment_frames", "probability": 0.1},
        {"kind": "prompt_cache", "probability": 0.1, "cache_read_tokens": 100},
    )
    client = Client(router.port)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(REQUEST)
    def one_request(request: tuple[str, bytes, list[tuple[str, str]]]) -> None:
        path, body, headers = request
        check_answer(*client.request(path, body, headers))

    one_request()
    assert client.sent >= EXAMPLES
    assert metric(router, "router_requests_in_flight") == 0


STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}\n\n'
    b"event: ping\r\ndata: {}\r\n\r\n"
    b": keep-alive\n\n"
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"a\\n\\nb"}}\r\n\n'
    b'event: message_delta\ndata: {"usage":{"output_tokens":3}}\n\r\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


@settings(max_examples=max(EXAMPLES // 4, 100), deadline=None, database=None, derandomize=True)
@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_fuzz_sse_frame_splits(cuts: list[int]) -> None:
    """However the network splits a stream, the framer yields the same frames with the same bytes."""
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)])]
    framer = SSEFramer()
    frames = [frame for chunk in chunks for frame in framer.feed(chunk)]
    assert [f.event for f in frames] == ["message_start", "ping", None, "content_block_delta", "message_delta", "message_stop"]
    assert b"".join(f.raw for f in frames) == STREAM and framer.pending == b""


@pytest.mark.parametrize("seed_body", [b"", b"{}", b"null", b'{"model":"opus"}'])
def test_fuzz_seed_cases(router, seed_body):
    """The corner cases the generator may not hit in a short run, always."""
    check_answer(*Client(router.port).request("/v1/messages", seed_body, []))
