"""Running the app under uvicorn: the one place that sets server options, for the CLI and the tests alike."""

from __future__ import annotations

import uvicorn

from router.app import create_app
from router.settings import Settings


def uvicorn_config(settings: Settings, *, loop: str = "uvloop") -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop=loop,
        http="httptools",
        lifespan="on",
        access_log=False,  # the router logs one line per request itself, without query strings
        log_config=None,  # logging is configured by the CLI (router.logs)
        server_header=False,
    )
