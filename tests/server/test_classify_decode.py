"""``/v1/router/classify`` refuses every undecodable body with a 400 envelope, as ``/v1/messages`` does
(a 500 would make a client SDK retry a request that can never succeed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY, post


@pytest.mark.parametrize(
    "body",
    [b'{"messages": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000, b'{"prompt": '],
    ids=["invalid-utf8", "nested-too-deep", "truncated"],
)
def test_undecodable_classify_bodies_are_400(router: Any, body: bytes) -> None:
    status, _, answer = post(router.admin_url + "/v1/router/classify", body, {"content-type": "application/json", "x-api-key": CLIENT_KEY})
    assert status == 400
    envelope = json.loads(answer)
    assert envelope["type"] == "error" and envelope["error"]["type"] == "invalid_request_error"
