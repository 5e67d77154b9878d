"""The application factory: ``create_app(settings)`` builds the app; nothing happens at import.

Owns wiring: the ASGI front door (``router.server.asgi``, which serves the proxy routes itself), the Litestar app
behind it with the other routes, the lifespan that builds ``Services``, and the exception handlers that
render every Litestar-side error in Anthropic's envelope with the status the client SDKs expect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from router.errors import ClientFacingError, InternalError, MethodNotAllowed, NotFound, RequestTooLarge
from router.errors import error_body
from router.server.asgi import TOO_LARGE, RouterApp
from router.gateway.replies import new_request_id
from router.server.routes import ROUTES
from router.server.lifespan import build_services
from router.settings import Settings
from router.upstream.transport import TransportFactory

log = logging.getLogger("router")

# Litestar's own HTTP errors mapped onto the router's hierarchy, so they leave in Anthropic's envelope.
_HTTP_ERRORS: dict[int, tuple[type[ClientFacingError], str]] = {
    404: (NotFound, "not found: the router serves /v1/messages, /v1/messages/count_tokens and /v1/models"),
    405: (MethodNotAllowed, "method not allowed on this path"),
    413: (RequestTooLarge, TOO_LARGE),
}


def _render(exc: ClientFacingError) -> Response[bytes]:
    request_id = new_request_id()
    return Response(
        content=error_body(exc.status, exc.message, request_id),
        status_code=exc.status,
        headers={"request-id": request_id, **exc.headers},
        media_type="application/json",
    )


def _client_error(_: Request[Any, Any, Any], exc: ClientFacingError) -> Response[bytes]:
    return _render(exc)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    known = _HTTP_ERRORS.get(exc.status_code)
    if known is not None:
        kind, message = known
        return _render(kind(message))
    return _render(ClientFacingError(str(exc.detail), status=exc.status_code))


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The exception's type only: messages may quote request content.
    log.error("unexpected error while handling a request: %s", type(exc).__name__, exc_info=log.isEnabledFor(10))
    return _render(InternalError("internal error in the router"))


def create_app(settings: Settings, transport: TransportFactory | None = None) -> RouterApp:
    """The app. ``transport`` replaces the upstream transport (tests, another provider); default ``http1``."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with build_services(settings, transport) as services:
            app.state.services = services
            yield

    app = Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        exception_handlers={
            ClientFacingError: _client_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,  # the CLI configures logging; Litestar must not replace it
        debug=False,
    )
    return RouterApp(app, settings.max_body_bytes)
