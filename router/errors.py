"""The router's one error hierarchy and the table that maps errors to HTTP status and Anthropic error type.

Every error the router raises on purpose is a ``RouterError``. Handlers never build error bodies themselves:
the app's exception handlers call :func:`error_body` so every error leaves in Anthropic's envelope, with the
status that makes the client SDK raise the matching exception class.

    RouterError
    ├── ConfigError                 bad settings or policy files (never reaches a client)
    ├── TransportError              the upstream connection failed (``http1``); the dispatcher turns it
    │                               into a retryable failure, so it never reaches a client as such
    │   └── FrameTooLarge           an SSE event over the framer's size cap (``sse.MAX_FRAME_BYTES``)
    ├── ClientGone                  the client left before its request body arrived (nobody to answer)
    ├── StateBackendError           the shared state store (Redis) failed or timed out; the caller falls
    │                               back to local state, so it never reaches a client as such
    └── ClientFacingError           rendered to the client in Anthropic's envelope
        ├── InvalidRequest          400 invalid_request_error
        ├── AuthenticationFailed    401 authentication_error
        ├── NotFound                404 not_found_error
        ├── MethodNotAllowed        405 invalid_request_error
        ├── RequestTooLarge         413 request_too_large
        ├── InternalError           500 api_error (a bug in the router; details stay in its log)
        ├── NoAllowedTarget         403 permission_error (a rule's bounds or the tenant's tiers leave nothing)
        ├── RateLimited             429 rate_limit_error (a tenant over its own rate limit; retry-after set)
        ├── BudgetExceeded          429 rate_limit_error (a tenant's monthly budget used up; x-should-retry: false)
        ├── ShuttingDown            503 api_error (the drain deadline passed before the answer; retry elsewhere)
        └── UpstreamUnavailable     429/500/502/504/529 synthesized by the router (no upstream body to relay)

Upstream errors that do carry a body are relayed as they came (see ``dispatch``), not wrapped here.
"""

from __future__ import annotations

import msgspec

# Status -> Anthropic error type, as the API documents it. Unknown 4xx/5xx fall back by class.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    """The Anthropic error type for an HTTP status."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if status < 500 else "api_error"


class RouterError(Exception):
    """Base of every error the router raises deliberately."""


class ConfigError(RouterError):
    """Settings or policy files are invalid. The message names the file and the problem."""


class TransportError(RouterError):
    """No usable response from the upstream connection. ``label``: connect, cut or malformed."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label
        self.message = message


class FrameTooLarge(TransportError):
    """The upstream sent a server-sent event larger than the framer buffers: a broken or hostile upstream."""

    def __init__(self, message: str) -> None:
        super().__init__("oversize", message)


class ClientGone(RouterError):
    """The client disconnected before its request body arrived: there is no one to answer."""


class StateBackendError(RouterError):
    """The shared state backend did not answer in time or failed. ``operation`` names what was tried."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation


class ClientFacingError(RouterError):
    """An error rendered to the client in Anthropic's envelope."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        if status is not None:
            self.status = status

    @property
    def error_type(self) -> str:
        return error_type_for(self.status)


class InvalidRequest(ClientFacingError):
    status = 400


class AuthenticationFailed(ClientFacingError):
    status = 401


class NotFound(ClientFacingError):
    status = 404


class MethodNotAllowed(ClientFacingError):
    status = 405


class RequestTooLarge(ClientFacingError):
    status = 413


class InternalError(ClientFacingError):
    status = 500


class NoAllowedTarget(ClientFacingError):
    status = 403


class RateLimited(ClientFacingError):
    """``x-should-retry: true``: waiting ``retry-after`` does fix it (unlike an exhausted budget)."""

    status = 429


class BudgetExceeded(ClientFacingError):
    status = 429


class ShuttingDown(ClientFacingError):
    """The router's drain deadline passed while this request was still waiting for its answer."""

    status = 503

    def __init__(self, message: str = "the router is shutting down; retry the request") -> None:
        super().__init__(message, headers={"x-should-retry": "true"})


class UpstreamUnavailable(ClientFacingError):
    """Every target failed without a relayable upstream body (connect errors, timeouts, cooldowns)."""


def error_body(status: int, message: str, request_id: str) -> bytes:
    """Anthropic's error envelope, encoded."""
    return msgspec.json.encode(
        {
            "type": "error",
            "error": {"type": error_type_for(status), "message": message},
            "request_id": request_id,
        }
    )


def sse_error_frame(status: int, message: str, request_id: str | None = None) -> bytes:
    """An Anthropic ``event: error`` frame, used to end a committed stream that failed upstream."""
    payload: dict[str, object] = {"type": "error", "error": {"type": error_type_for(status), "message": message}}
    if request_id:
        payload["request_id"] = request_id
    return b"event: error\ndata: " + msgspec.json.encode(payload) + b"\n\n"
