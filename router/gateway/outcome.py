"""What one attempt produced, which failures allow a fallback, and the error a client gets when all fail.

Pure functions and plain records: the dispatcher and the stream opener fill them in; this module decides
what is retryable and which failure is the most informative one to return.
"""

from __future__ import annotations

import math

import msgspec

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
CAPACITY_STATUSES = frozenset({429, 529})

# Status from an Anthropic error type, for `error` events that arrive inside a 200 stream.
STATUS_BY_ERROR_TYPE = {
    "rate_limit_error": 429,
    "overloaded_error": 529,
    "api_error": 500,
    "timeout_error": 504,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "billing_error": 402,
}

# Words in a 429's message that mean a spend or billing limit, not momentary capacity: falling back to
# another tier on the same account would only spend more, so such a 429 is returned as it is.
_SPEND_LIMIT_WORDS = ("spend limit", "spending limit", "billing", "credit balance", "usage limit")


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """One failed attempt. ``body`` is set when the upstream sent an error envelope worth relaying."""

    model: str
    label: str
    """Short outcome for ``x-router-attempts``: the status (``429``) or ``connect``, ``timeout``, ``cut``..."""
    status: int
    """The status a client should see for this failure."""
    retryable: bool
    message: str
    retry_after: float | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None


def stream_error_failure(
    model: str, error_type: str, status: int, body: bytes | None, request_id: str | None
) -> Failure:
    """An error event a stream sent before any content: a failure like an HTTP error of ``status`` (a
    fallback may follow), relayed as the JSON ``body`` if no target answers. Of the stream's headers only
    the request id is kept (the others, content-type above all, do not fit a JSON error reply)."""
    return Failure(
        model=model,
        label=f"error_event:{error_type}",
        status=status,
        retryable=status in RETRYABLE_STATUSES,
        message=f"upstream stream error before content ({error_type})",
        body=body,
        headers={"request-id": request_id} if request_id else None,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds form; the API does not send HTTP dates)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


def is_spend_limit(body: bytes) -> bool:
    try:
        message = msgspec.json.decode(body).get("error", {}).get("message", "")
    except (msgspec.DecodeError, AttributeError, UnicodeDecodeError, RecursionError):
        return False
    lowered = str(message).lower()
    return any(word in lowered for word in _SPEND_LIMIT_WORDS)


def http_failure(model: str, status: int, body: bytes, headers: dict[str, str]) -> Failure:
    """A failure from an upstream HTTP error response."""
    retryable = status in RETRYABLE_STATUSES and not (status == 429 and is_spend_limit(body))
    return Failure(
        model=model,
        label=str(status),
        status=status,
        retryable=retryable,
        message=f"upstream answered {status}",
        retry_after=parse_retry_after(headers.get("retry-after")),
        body=body,
        headers=headers,
    )


def _rank(failure: Failure) -> int:
    """Higher is more informative: a rate limit with its retry-after beats overload, which beats other errors
    with a body, which beat transport failures the router had to describe itself."""
    if failure.body is not None:
        return {429: 4, 529: 3}.get(failure.status, 2)
    return 1 if failure.status in CAPACITY_STATUSES else 0


def most_informative(failures: list[Failure]) -> Failure:
    """The failure to show the client. Ties go to the latest attempt."""
    best = failures[0]
    for failure in failures[1:]:
        if _rank(failure) >= _rank(best):
            best = failure
    return best


def exhausted_headers(failures: list[Failure]) -> dict[str, str]:
    """``retry-after`` / ``x-should-retry`` once every target failed.

    A client retry is worth it only when some target reported a rate limit or overload with a retry-after:
    then the soonest one is advertised. Otherwise the router has already tried every tier, and a client
    retry would only stack on top (``x-should-retry: false``)."""
    waits = [f.retry_after for f in failures if f.retry_after is not None and f.status in CAPACITY_STATUSES]
    if waits:
        return {"retry-after": str(max(1, math.ceil(min(waits)))), "x-should-retry": "true"}
    return {"x-should-retry": "false"}


def error_status_for_event(error_type: str) -> int:
    return STATUS_BY_ERROR_TYPE.get(error_type, 500)

