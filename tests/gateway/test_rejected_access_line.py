"""A request the router refuses itself -- an unreadable body (400), an unknown key (401), a spent rate
limit (429) -- still gets its one access line, with the status and error type, and without the key or
the request text (it used to be counted in metrics but never logged)."""

from __future__ import annotations

import json
import logging
import time

from router.policy.keys import hash_key
from tests.conftest import post

KEY = "sk-router-rejected-line-test-7781"
TENANTS = f'tenants:\n  team-r:\n    keys: ["{hash_key(KEY)}"]\n    rate_limit: {{requests_per_minute: 1}}\n'
SECRET = "marmalade-cobalt-5512"


def access_lines(caplog, count: int) -> list[dict]:
    end = time.monotonic() + 5
    while time.monotonic() < end:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]
        if len(lines) >= count:
            return lines
        time.sleep(0.01)
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]


def test_every_refusal_gets_one_access_line_without_key_or_prompt(make_router, caplog):
    caplog.set_level(logging.INFO, logger="router.access")
    router = make_router(files={"tenants.yaml": TENANTS})
    url = router.url + "/v1/messages"
    good = json.dumps({"model": "haiku", "max_tokens": 8, "messages": [{"role": "user", "content": SECRET}]}).encode()
    assert post(url, b'{"model": "haiku", "messages": [', {"x-api-key": KEY})[0] == 400
    assert post(url, good, {"x-api-key": "sk-not-a-tenant-" + SECRET})[0] == 401
    assert post(url, good, {"x-api-key": KEY})[0] == 200
    assert post(url, good, {"x-api-key": KEY})[0] == 429  # one request a minute
    lines = access_lines(caplog, 4)
    assert [line["outcome"] for line in lines] == ["rejected", "rejected", "ok", "rejected"], lines
    bad_json, bad_key, _, limited = lines
    assert (bad_json["status"], bad_json["error"]) == (400, "invalid_request_error")
    assert (bad_key["status"], bad_key["error"]) == (401, "authentication_error")
    assert (limited["status"], limited["error"], limited["tenant"]) == (429, "rate_limit_error", "team-r")
    assert limited["requested"] == "haiku"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in text and KEY not in text
