"""Which headers cross the router, in each direction, and the ``x-router-*`` headers it adds.

Client -> upstream: everything except hop-by-hop headers, the client's credentials (the router injects its
own), the router's own control headers and encodings the relay would have to undo. A header the client
sent more than once (two ``anthropic-beta`` lines) goes upstream once with its values joined by ", ", in
order: RFC 9110 section 5.3 makes that equivalent for list-valued fields, which every header a client
repeats to the API is (``cookie``, the one exception, is never forwarded).

Upstream -> client: an allowlist (``DOWNSTREAM_ALLOWED``): the request id, the rate-limit and retry advice
the SDKs act on, and content headers. Anything else the upstream sends -- ``set-cookie``,
``anthropic-organization-id``, a load balancer's internals -- is the router's business, not its clients'.
"""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

# Never forwarded upstream: credentials (replaced by the router's), framing the client library computes,
# and the router's own hint headers.
_DROP_UPSTREAM = HOP_BY_HOP | {"host", "content-length", "x-api-key", "authorization", "accept-encoding", "cookie"}

# Relayed to the client (lower-case names), plus every ``anthropic-ratelimit-*`` header. Framing headers
# (content-length, transfer-encoding) are the router's server's own; content-encoding is never relayed
# because the router asks the upstream for identity.
DOWNSTREAM_ALLOWED = frozenset(
    {
        "request-id",
        "retry-after",
        "x-should-retry",
        "content-type",
        "content-language",
        "cache-control",
    }
)
DOWNSTREAM_PREFIXES = ("anthropic-ratelimit-",)


def upstream_headers(client_headers: Iterable[tuple[str, str]], api_key: str | None) -> dict[str, str]:
    """Headers for the upstream request. ``anthropic-*`` and unknown headers pass verbatim."""
    out: dict[str, str] = {}
    for name, value in client_headers:
        lowered = name.lower()
        if lowered in _DROP_UPSTREAM or lowered.startswith("x-router-"):
            continue
        seen = out.get(lowered)
        out[lowered] = value if seen is None else f"{seen}, {value}"
    out["accept-encoding"] = "identity"
    out.setdefault("content-type", "application/json")
    if api_key:
        out["x-api-key"] = api_key
    return out


def downstream_headers(upstream: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The upstream response headers on the allowlist, repeated ones joined with ", "."""
    out: dict[str, str] = {}
    for name, value in upstream:
        lowered = name.lower()
        if lowered in DOWNSTREAM_ALLOWED or lowered.startswith(DOWNSTREAM_PREFIXES):
            seen = out.get(lowered)
            out[lowered] = value if seen is None else f"{seen}, {value}"
    return out


def format_attempts(attempts: Iterable[tuple[str, str]]) -> str:
    """``x-router-attempts``: ``model:outcome`` pairs in order, e.g. ``claude-opus-4-8:429,claude-sonnet-4-6:200``."""
    return ",".join(f"{model}:{outcome}" for model, outcome in attempts)
