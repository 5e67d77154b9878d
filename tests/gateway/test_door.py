"""What the router refuses at the door, before any upstream call: bodies it cannot decode and ``model``
strings it must not copy into headers or logs. Each is a 400 envelope, never a 500 the SDK would retry
(issue 13, defects 10 and 16)."""

from __future__ import annotations

import json
import logging
import time

import pytest

from tests.conftest import CLIENT_KEY, post

KEY = {"x-api-key": CLIENT_KEY, "content-type": "application/json"}
MESSAGES = [{"role": "user", "content": "hi"}]

DEEP = b'{"model":"sonnet","max_tokens":8,"messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
BAD_UTF8 = b'{"model":"sonnet","max_tokens":8,"messages":[{"role":"user","content":"\xff\xfe"}]}'
BAD_UTF8_MODEL = b'{"model":"\xed\xa0\x80","max_tokens":8,"messages":[]}'


def assert_400(status, headers, body, fragment=""):
    assert status == 400, body[:200]
    payload = json.loads(body)
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert fragment in payload["error"]["message"]
    assert payload["request_id"] == headers["request-id"]


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/v1/router/explain"])
@pytest.mark.parametrize("body, fragment", [(DEEP, "nested too deeply"), (BAD_UTF8, "UTF-8"), (BAD_UTF8_MODEL, "UTF-8")])
def test_undecodable_bodies_are_400(router, sim, path, body, fragment):
    base = router.admin_url if path.startswith("/v1/router/") else router.url  # explain: admin listener
    assert_400(*post(base + path, body, KEY), fragment)
    assert sim.requests() == []


@pytest.mark.parametrize(
    "model",
    [
        "claude-\u00e9t\u00e9",  # latin-1 but not ASCII
        "\u6a21\u578b",  # not latin-1: was a plain-text 500 once echoed into x-router-model
        "claude-opus-4-8\r\nx-injected: 1",  # CR/LF: the connection was closed after the upstream call
        "m" * 1_000_000,  # was a 1 MB response header and a 1 MB log line
        "m" * 257,
        "",
        "tab\tinside",
    ],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_unusable_model_strings_are_400_before_any_upstream_call(router, sim, model, path, caplog):
    body = json.dumps({"model": model, "max_tokens": 8, "messages": MESSAGES}).encode()
    with caplog.at_level(logging.INFO, logger="router"):
        status, headers, payload = post(router.url + path, body, KEY)
    assert_400(status, headers, payload, "printable ASCII")
    assert model[:300] not in payload.decode() or not model
    assert all(len(value) < 1000 for value in headers.values())
    assert sim.requests() == []
    assert all(len(record.getMessage()) < 2000 for record in caplog.records)


def test_longest_allowed_model_is_forwarded_and_logged_bounded(router, sim, caplog):
    model = "x" * 256
    body = json.dumps({"model": model, "max_tokens": 8, "messages": MESSAGES}).encode()
    with caplog.at_level(logging.INFO, logger="router.access"):
        status, headers, _ = post(router.url + "/v1/messages", body, KEY)
        # The access line is written once the answer is out: it may trail the client's read a little.
        end = time.monotonic() + 5
        while not any(r.name == "router.access" for r in caplog.records) and time.monotonic() < end:
            time.sleep(0.01)
    assert status == 200 and sim.models_seen() == [model]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]
    assert lines and all(len(attempt) <= 80 for line in lines for attempt in line["attempts"])
    assert lines[-1]["requested"] == "other"
