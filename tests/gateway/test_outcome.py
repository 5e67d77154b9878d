"""Which failures allow a fallback, and which error the client sees once every target failed."""

import json

from router.gateway.outcome import exhausted_headers, http_failure, most_informative, parse_retry_after


def envelope(kind, message):
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


def test_capacity_429_is_retryable_spend_limit_429_is_not():
    capacity = http_failure("m", 429, envelope("rate_limit_error", "Number of request tokens exceeded"), {})
    spend = http_failure("m", 429, envelope("rate_limit_error", "You have reached your workspace spend limit"), {})
    assert capacity.retryable and not spend.retryable


def test_statuses_that_fall_back():
    for status in (429, 500, 502, 503, 504, 529):
        assert http_failure("m", status, b"{}", {}).retryable
    for status in (400, 401, 402, 403, 404, 413, 422):
        assert not http_failure("m", status, b"{}", {}).retryable


def test_retry_after_parsing():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after(None) is None


def test_rate_limit_with_body_beats_later_transport_failure():
    rate = http_failure("a", 429, envelope("rate_limit_error", "slow down"), {"retry-after": "9"})
    from router.gateway.dispatch import transport_failure

    cut = transport_failure("b", "connect", "refused")
    assert most_informative([rate, cut]) is rate
    assert exhausted_headers([rate, cut]) == {"retry-after": "9", "x-should-retry": "true"}
    assert exhausted_headers([cut]) == {"x-should-retry": "false"}


def test_soonest_retry_after_is_advertised():
    a = http_failure("a", 429, b"{}", {"retry-after": "30"})
    b = http_failure("b", 529, b"{}", {"retry-after": "2.2"})
    assert exhausted_headers([a, b])["retry-after"] == "3"
