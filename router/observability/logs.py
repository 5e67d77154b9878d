"""Logging setup for the process: the line format (one JSON object per line, or text for a terminal), the
level, and which third-party loggers stay quiet.

Owns only configuration and formatting. What is logged is decided where it happens, under one rule: no
prompt text and no keys at any level the router ships with (see ``pipeline._log``). The JSON format puts the
fields of a structured record (the access line) at the top level of its object, next to ``timestamp``,
``level``, ``logger`` and ``message``, so log shippers index them without parsing a string in a string.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal, TextIO

import msgspec

LogFormat = Literal["json", "text"]
FORMATS: tuple[str, ...] = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

FIELDS_ATTR = "fields"
"""A record carrying ``extra={"fields": {...}}`` has those fields merged into its JSON object."""
STRUCTURED_LOGGERS = frozenset({"router.access"})
"""Loggers whose message is itself one JSON object (the access line): merged as fields, not quoted."""

# Per-request chatter of the libraries the router uses: the HTTP clients log one INFO line per request
# (the Haiku triage call included), the SDK logs request options -- prompts among them -- at DEBUG, and the
# servers' access logs would repeat what the access line says, with query strings. Kept at WARNING at every
# level, because the rule "no prompt, no key" holds at DEBUG too.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "anthropic", "uvicorn.access", "aiohttp.access")

# The record attributes logging itself sets; anything else on a record came from ``extra=``.
# ``color_message`` is uvicorn's ANSI-coloured copy of the message, meant for terminals only.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}
_ENVELOPE = ("timestamp", "level", "logger", "message")
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``timestamp`` (UTC, RFC 3339 with milliseconds), ``level``,
    ``logger``, ``message``, then the record's fields; ``exception`` holds a traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict):
            _merge(line, fields)
        elif record.name in STRUCTURED_LOGGERS and message.startswith("{"):
            # The access line arrives as JSON text; decoding ~300 bytes once per request costs a few µs.
            try:
                decoded = msgspec.json.decode(message)
            except msgspec.DecodeError:
                decoded = None
            if isinstance(decoded, dict):
                line["message"] = "request"
                _merge(line, decoded)
        for key, value in vars(record).items():
            if key not in _RESERVED and key != FIELDS_ATTR and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exception"] = self.formatStack(record.stack_info)
        try:
            return _encoder.encode(line).decode("utf-8", "replace")
        except (TypeError, ValueError, OverflowError):
            return _fallback(line)


def _timestamp(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


def _merge(line: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        # A field never overwrites the envelope: a "message" or "level" field is kept under a prefixed name.
        line[f"field_{key}" if key in _ENVELOPE else str(key)] = value


def _fallback(line: dict[str, Any]) -> str:
    # A value msgspec cannot encode (an object passed through ``extra``): its str() rather than a lost line.
    safe = {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in line.items()}
    return _encoder.encode(safe).decode()


def resolve_format(requested: str | None, stream: TextIO | None = None) -> LogFormat:
    """``json``/``text`` as asked; unset: text on a terminal, JSON otherwise (a pipe, a file, a container)."""
    if requested is not None:
        if requested not in FORMATS:
            raise ValueError(f"unknown log format {requested!r}; expected json or text")
        return requested  # type: ignore[return-value]
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(level: str, log_format: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if resolve_format(log_format, sys.stderr) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Python warnings would otherwise reach stderr as bare text lines between the JSON ones.
    logging.captureWarnings(True)


def log_unexpected(logger: logging.Logger, doing: str, exc: BaseException) -> None:
    """An unexpected error, named by its type only: its message may quote request content. The traceback
    is attached only when the logger is at DEBUG (which the router never ships with)."""
    logger.error("unexpected error while %s: %s", doing, type(exc).__name__, exc_info=logger.isEnabledFor(logging.DEBUG))
