"""Errors the router produces itself leave in Anthropic's envelope with the status that makes the SDK raise
the matching exception class, and nothing reaches the upstream."""

from __future__ import annotations

import json

import anthropic
import httpx2
import pytest

from tests.conftest import CLIENT_KEY, post, sdk_client

KEY = {"x-api-key": CLIENT_KEY, "content-type": "application/json"}
GOOD = {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def check_envelope(status, headers, body, expected_status, expected_type, fragment):
    assert status == expected_status
    payload = json.loads(body)
    assert payload["type"] == "error"
    assert payload["error"]["type"] == expected_type
    assert fragment in payload["error"]["message"]
    assert payload["request_id"] == headers["request-id"]
    assert headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"max_tokens": 8, "messages": []}).encode(), "model: Field required"),
        (json.dumps({"model": "auto", "max_tokens": 8}).encode(), "messages: Field required"),
        (json.dumps({**GOOD, "model": 42}).encode(), "$.model"),
        (json.dumps({**GOOD, "stream": "yes"}).encode(), "$.stream"),
        (json.dumps({**GOOD, "messages": "hi"}).encode(), "$.messages"),
    ],
)
def test_unreadable_bodies_are_400_invalid_request(router, sim, body, fragment):
    check_envelope(*post(router.url + "/v1/messages", body, KEY), 400, "invalid_request_error", fragment)
    assert sim.requests() == []


def test_missing_credentials_is_401(router, sim):
    result = post(router.url + "/v1/messages", json.dumps(GOOD).encode(), {"content-type": "application/json"})
    check_envelope(*result, 401, "authentication_error", "missing credentials")
    result = post(router.url + "/v1/messages", json.dumps(GOOD).encode(), {"authorization": "Basic abc"})
    check_envelope(*result, 401, "authentication_error", "missing credentials")
    assert sim.requests() == []


def test_sdk_raises_the_matching_classes(router):
    bare = anthropic.Anthropic(base_url=router.url, api_key="", max_retries=0, default_headers={"authorization": anthropic.omit})
    with pytest.raises(anthropic.AuthenticationError):
        bare.messages.create(**GOOD)
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk_client(router).messages.create(model=None, max_tokens=8, messages=[])  # type: ignore[arg-type]
    assert info.value.body["error"]["type"] == "invalid_request_error"


def test_unknown_route_is_404_and_wrong_method_is_405(router):
    # Outside /v1/ (every /v1/ path the router does not serve is forwarded upstream: tests/gateway/test_passthrough.py).
    check_envelope(*post(router.url + "/v2/complete", b"{}", KEY), 404, "not_found_error", "not found")
    check_envelope(*post(router.url + "/v1/messages", b"", KEY, method="GET"), 405, "invalid_request_error", "method")
    check_envelope(*post(router.url + "/v1/messages", b"", KEY, method="DELETE"), 405, "invalid_request_error", "method")


def test_body_over_32mb_is_413(router, sim):
    big = b'{"model":"auto","max_tokens":8,"messages":[{"role":"user","content":"' + b"a" * (32 * 1024 * 1024) + b'"}]}'
    with httpx2.Client(timeout=60) as client:
        response = client.post(router.url + "/v1/messages", content=big, headers=KEY)
    check_envelope(response.status_code, response.headers, response.content, 413, "request_too_large", "32 MB")
    assert sim.requests() == []


def test_body_just_under_the_limit_is_forwarded(make_router, sim):
    router = make_router(max_body_bytes=2_000_000)
    text = "b" * 1_500_000
    body = json.dumps({**GOOD, "messages": [{"role": "user", "content": text}]}).encode()
    status, _, _ = post(router.url + "/v1/messages", body, KEY)
    assert status == 200
    assert sim.requests()[-1]["body"]["messages"][0]["content"] == text
