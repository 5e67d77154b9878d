"""The application factory: ``create_apps(settings)`` builds the client app and the admin app; nothing happens
at import.

Owns wiring: the ASGI front door (``router.server.asgi``, which serves the proxy routes itself), the Litestar app
behind it with the other client routes, the admin Litestar app (metrics, detailed readiness, reload, explain,
classify, OpenAPI) for the separate admin listener, the one lifespan (on the client app) that builds
``Services`` for both, and the exception handlers that render every Litestar-side error in Anthropic's
envelope with the status the client SDKs expect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from router.observability.logs import log_unexpected
from router.errors import ClientFacingError, InternalError, MethodNotAllowed, NotFound, RequestTooLarge

from router.server.asgi import TOO_LARGE, RouterApp
from router.gateway.replies import envelope
from router.server.openapi import encoded as openapi_document
from router.server.routes import ADMIN_ROUTES, CLIENT_ROUTES
from router.server.status import load_page as load_status_page
from router.server.lifespan import build_services
from router.settings import Settings
from router.upstream.transport import TransportFactory

log = logging.getLogger("router")

# Litestar's own HTTP errors mapped onto the router's hierarchy, so they leave in Anthropic's envelope.
_HTTP_ERRORS: dict[int, tuple[type[ClientFacingError], str]] = {
    404: (NotFound, "not found: the router serves /v1/messages, /v1/messages/count_tokens and /v1/models "
          "(its own endpoints are on the admin listener)"),
    405: (MethodNotAllowed, "method not allowed on this path"),
    413: (RequestTooLarge, TOO_LARGE),
}


def _render(exc: ClientFacingError) -> Response[bytes]:
    status, headers, body = envelope(exc)
    return Response(content=body, status_code=status, headers=headers, media_type="application/json")


def _client_error(_: Request[Any, Any, Any], exc: ClientFacingError) -> Response[bytes]:
    return _render(exc)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    known = _HTTP_ERRORS.get(exc.status_code)
    if known is not None:
        kind, message = known
        error = kind(message)
        if exc.headers:  # e.g. the 405's Allow header (RFC 9110)
            error.headers = {**error.headers, **exc.headers}
        return _render(error)
    return _render(ClientFacingError(str(exc.detail), status=exc.status_code))


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The exception's type only: messages may quote request content.
    log_unexpected(log, "handling a request", exc)
    return _render(InternalError("internal error in the router"))


class Apps(NamedTuple):
    client: RouterApp
    """The client port: the Anthropic API, ``/livez`` and a bare ``/readyz``. Runs the lifespan."""
    admin: Litestar
    """The admin listener. Its services are the client app's, set by the client app's lifespan."""


def _litestar(routes: list[Any], settings: Settings, lifespan: list[Any]) -> Litestar:
    return Litestar(
        route_handlers=routes,
        lifespan=lifespan,
        exception_handlers={
            ClientFacingError: _client_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,  # the router's own document is router.server.openapi, on the admin listener
        logging_config=None,  # the CLI configures logging; Litestar must not replace it
        debug=False,
    )


def create_apps(
    settings: Settings,
    transport: TransportFactory | None = None,
    *,
    before_teardown: Callable[[], Awaitable[None]] | None = None,
) -> Apps:
    """Both apps around one ``Services``. ``transport`` replaces the upstream transport (tests, another
    provider; default ``http1``). ``before_teardown`` runs when the client app's lifespan ends, before the
    services are torn down: the server waits there for the admin listener to finish its own drain."""
    admin = _litestar(ADMIN_ROUTES, settings, [])
    admin.state.openapi = openapi_document()
    admin.state.status_page = load_status_page()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with build_services(settings, transport) as services:
            app.state.services = services
            admin.state.services = services
            try:
                yield
            finally:
                if before_teardown is not None:
                    await before_teardown()

    client = _litestar(CLIENT_ROUTES, settings, [lifespan])
    return Apps(RouterApp(client, settings.max_body_bytes), admin)


def create_app(settings: Settings, transport: TransportFactory | None = None) -> RouterApp:
    """The client app alone (benchmarks, embedding): ``create_apps(...).client``."""
    return create_apps(settings, transport).client
