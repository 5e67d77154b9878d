"""Which headers cross the router, in each direction, and the ``x-router-*`` headers it adds.

Client -> upstream: everything except hop-by-hop headers, the client's credentials (the router injects its
own), the router's own control headers and encodings the relay would have to undo. Upstream -> client:
everything except hop-by-hop and framing headers that the router's server sets itself.
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

# Never relayed to the client: framing the router's server computes itself.
_DROP_DOWNSTREAM = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}


def upstream_headers(client_headers: Iterable[tuple[str, str]], api_key: str | None) -> dict[str, str]:
    """Headers for the upstream request. ``anthropic-*`` and unknown headers pass verbatim."""
    out: dict[str, str] = {}
    for name, value in client_headers:
        lowered = name.lower()
        if lowered in _DROP_UPSTREAM or lowered.startswith("x-router-"):
            continue
        out[lowered] = value
    out["accept-encoding"] = "identity"
    out.setdefault("content-type", "application/json")
    if api_key:
        out["x-api-key"] = api_key
    return out


def downstream_headers(upstream: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Upstream response headers safe to relay to the client."""
    return {name.lower(): value for name, value in upstream if name.lower() not in _DROP_DOWNSTREAM}


def format_attempts(attempts: Iterable[tuple[str, str]]) -> str:
    """``x-router-attempts``: ``model:outcome`` pairs in order, e.g. ``claude-opus-4-8:429,claude-sonnet-4-6:200``."""
    return ",".join(f"{model}:{outcome}" for model, outcome in attempts)
