"""Logging setup for the process: one line per record, level from settings.

Owns only configuration. What is logged is decided where it happens, under one rule: no prompt text and no
keys at any level the router ships with (see ``routes._log``).
"""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP client's and server's own loggers are chatty at INFO and would log request lines.
    for noisy in ("uvicorn.access", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
