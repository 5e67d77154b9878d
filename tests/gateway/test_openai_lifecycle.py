"""An OpenAI stream at the edges of its life: the drain deadline (an error chunk in the OpenAI shape, never a
clean end) and a client that leaves mid-stream (charged for what it received)."""

from __future__ import annotations

import json
import logging
import threading
import time

import openai

from tests.conftest import CLIENT_KEY

MESSAGES = [{"role": "user", "content": "Write a long essay."}]


def lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]


def wait_for_line(caplog, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while not lines(caplog) and time.monotonic() < deadline:
        time.sleep(0.01)
    (line,) = lines(caplog)
    return line


def oai(router) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20)


def test_stream_running_at_the_drain_deadline_ends_with_an_openai_error_chunk(make_router, sim, caplog):
    router = make_router(drain_seconds=0.5)
    sim.profiles({"*": {"ttft_ms": 0, "tokens_per_s": 50, "output_tokens": 500}})  # a 10 s stream
    seen = []
    stopper = None
    with caplog.at_level(logging.INFO, logger="router.access"):
        stream = oai(router).chat.completions.create(model="sonnet", messages=MESSAGES, stream=True)
        try:
            for chunk in stream:
                seen.append(chunk)
                if stopper is None and chunk.choices and chunk.choices[0].delta.content:
                    stopper = threading.Thread(target=router.stop)
                    stopper.start()
        except openai.APIError as exc:
            seen.append(exc)
        assert stopper is not None
        stopper.join(10)
        line = wait_for_line(caplog)
    error = seen[-1]
    assert isinstance(error, openai.APIError) and "shutting down" in error.message
    assert error.body["type"] == "api_error" and set(error.body) == {"message", "type", "param", "code"}
    assert line["outcome"] == "shutdown" and line["api"] == "chat.completions"


def test_client_leaving_mid_stream_is_charged_for_what_it_received(make_router, sim, caplog):
    router = make_router()
    sim.profiles({"*": {"ttft_ms": 0, "tokens_per_s": 100, "output_tokens": 300}})  # a 3 s stream
    with caplog.at_level(logging.INFO, logger="router.access"):
        stream = oai(router).chat.completions.create(model="sonnet", messages=MESSAGES, stream=True)
        received = 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
                if received == 5:
                    break
        stream.close()
        line = wait_for_line(caplog)
    assert line["outcome"] == "client_closed" and line["end"] == "client_gone"
    assert line["output_tokens"] >= 5 and line["usd"] > 0, "the chunks relayed are estimated and charged"
