"""The application factory: ``create_app(settings)`` builds the Litestar app; nothing happens at import.

Owns wiring: routes, the lifespan that builds ``Services``, and the exception handlers that render every
error in Anthropic's envelope with the status the client SDKs expect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.exceptions import HTTPException
from litestar.response.base import ASGIResponse

from router.errors import ClientFacingError, InternalError
from router.replies import error_reply
from router.routes import ROUTES
from router.services import build_services
from router.settings import Settings

log = logging.getLogger("router")

# Litestar's own HTTP errors mapped onto the router's, so they leave in Anthropic's envelope.
_HTTP_MESSAGES = {
    404: "not found: the router serves /v1/messages, /v1/messages/count_tokens and /v1/models",
    405: "method not allowed on this path",
    413: "request body too large: the limit is 32 MB",
}


def _client_error(_: Request[Any, Any, Any], exc: ClientFacingError) -> ASGIResponse:
    return error_reply(exc)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> ASGIResponse:
    status = exc.status_code
    message = _HTTP_MESSAGES.get(status) or str(exc.detail)
    return error_reply(ClientFacingError(message, status=status))


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> ASGIResponse:
    # The exception's type only: messages may quote request content.
    log.error("unexpected error while handling a request: %s", type(exc).__name__, exc_info=log.isEnabledFor(10))
    return error_reply(InternalError("internal error in the router"))


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with build_services(settings) as services:
            app.state.services = services
            yield

    return Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        exception_handlers={
            ClientFacingError: _client_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
    )
