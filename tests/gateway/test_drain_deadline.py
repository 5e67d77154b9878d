"""What a client sees when the router's drain deadline passes before its answer is done (issue 13, defect
17): a stream ends with an ``event: error`` frame, a JSON request gets a 503 envelope with
``x-should-retry: true``, and both get an access line with outcome ``shutdown``."""

from __future__ import annotations

import json
import logging
import threading
import time

import anthropic

from tests.conftest import sdk_client

MESSAGES = [{"role": "user", "content": "Write a long essay."}]


def lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]


def test_stream_running_at_the_drain_deadline_ends_with_an_error_frame(make_router, sim, caplog):
    router = make_router(drain_seconds=0.5)
    sim.profiles({"*": {"ttft_ms": 0, "tokens_per_s": 50, "output_tokens": 500}})  # a 10 s stream
    events = []
    with caplog.at_level(logging.INFO, logger="router.access"):
        with sdk_client(router).messages.with_streaming_response.create(
            model="sonnet", max_tokens=1000, messages=MESSAGES, stream=True
        ) as raw:
            stopper = None
            try:
                for event in raw.parse():
                    events.append(event.type)
                    if stopper is None and event.type == "content_block_delta":
                        stopper = threading.Thread(target=router.stop)
                        stopper.start()
            except anthropic.APIStatusError as exc:
                events.append(("error", exc.body["error"]["message"] if isinstance(exc.body, dict) else str(exc)))
        stopper.join(10)
        deadline = time.monotonic() + 3
        while not lines(caplog) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert events[-1][0] == "error" and "shutting down" in events[-1][1], events[-3:]
    assert "message_stop" not in events
    (line,) = lines(caplog)
    assert line["outcome"] == "shutdown" and line["end"] == "shutdown"


def test_json_request_waiting_at_the_drain_deadline_gets_a_503_envelope(make_router, sim, caplog):
    router = make_router(drain_seconds=0.5, first_content_timeout=30)
    sim.faults({"kind": "stall", "stall_s": 30})
    with caplog.at_level(logging.INFO, logger="router.access"):
        threading.Timer(0.3, router.stop).start()
        started = time.monotonic()
        try:
            sdk_client(router).messages.create(model="sonnet", max_tokens=8, messages=MESSAGES)
        except anthropic.APIStatusError as exc:
            assert exc.status_code == 503 and exc.body["error"]["type"] == "api_error"
            assert exc.response.headers["x-should-retry"] == "true"
        else:
            raise AssertionError("expected a 503")
        assert time.monotonic() - started < 5
        (line,) = lines(caplog)
    assert line["outcome"] == "shutdown" and line["attempts"] == ["claude-sonnet-4-6:shutdown"]
