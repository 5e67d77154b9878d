"""The request view reads a JSON number with no fraction as the integer it is (``max_tokens: 1024.0``,
as some serialisers write integers) and forwards the body as the client wrote it; a fractional
``max_tokens`` is still refused by the router, which could not budget for it."""

from __future__ import annotations

import json

import pytest

from router.errors import InvalidRequest
from router.gateway.view import body_for_model, parse_request
from tests.conftest import post

MESSAGES = [{"role": "user", "content": "hi"}]


def test_an_integral_float_max_tokens_is_read_as_an_integer_and_forwarded_as_written():
    raw = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 1024.0, "messages": MESSAGES}).encode()
    parsed = parse_request(raw)
    assert parsed.view.max_tokens == 1024 and type(parsed.view.max_tokens) is int
    assert body_for_model(parsed, "claude-haiku-4-5") == raw  # nothing to change: the client's bytes
    clamped = json.loads(body_for_model(parsed, "claude-haiku-4-5", max_output_tokens=512))
    assert clamped["max_tokens"] == 512


@pytest.mark.parametrize("value", [100.5, "100", True])
def test_a_max_tokens_the_router_cannot_read_is_still_a_400(value):
    raw = json.dumps({"model": "auto", "max_tokens": value, "messages": MESSAGES}).encode()
    with pytest.raises(InvalidRequest, match="max_tokens"):
        parse_request(raw)


def test_the_router_forwards_it_and_the_upstream_judges(router, sim):
    body = b'{"model":"haiku","max_tokens":64.0,"messages":[{"role":"user","content":"hi"}]}'
    status, _, answer = post(router.url + "/v1/messages", body, {"x-api-key": "k", "content-type": "application/json"})
    seen = [r for r in sim.requests() if r["path"] == "/v1/messages"]
    assert len(seen) == 1, (status, answer)  # forwarded, not refused by the router
    assert seen[0]["body"]["max_tokens"] == 64.0
