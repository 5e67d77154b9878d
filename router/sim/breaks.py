"""The ways the sim misbehaves before or instead of content: error statuses, dropped connections, stalls.

Owns turning a fault rule into an error response (429/5xx/529), aborting the TCP connection so the client
sees a reset, and interruptible waiting. Mid-stream breaks are sequenced by ``messages``; this module only
supplies the primitives.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from aiohttp import web

from router.sim.config import JSON_ONLY_KINDS, STREAM_ONLY_KINDS, FaultRule
from router.sim.state import SimState
from router.sim.wire import error_response, retry_after_value


def status_fault_response(rule: FaultRule, headers: dict[str, str], *, stream: bool) -> web.Response | None:
    """The error response a fault calls for before any 200 is sent, or ``None`` for other kinds.

    Stream-only kinds on a non-stream request become 529 ``overloaded_error``: there is no open stream to
    break, and overload is what the real API reports in that situation.
    """
    if rule.kind == "rate_limit":
        limited = {**headers, "retry-after": retry_after_value(rule.retry_after)}
        limited["anthropic-ratelimit-requests-remaining"] = "0"
        return error_response(429, limited)
    wrong_mode = rule.kind in (JSON_ONLY_KINDS if stream else STREAM_ONLY_KINDS)
    if rule.kind == "overloaded" or wrong_mode:
        return error_response(529, headers)
    if rule.kind == "server_error":
        return error_response(rule.status or 500, headers)
    if rule.kind == "invalid_request":
        return error_response(400, headers, "max_tokens: this model accepts fewer output tokens (simulated)")
    return None


def abort_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset, mid-whatever, as a crashed upstream or middlebox would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER with a zero timeout turns close() into an RST instead of an orderly FIN.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


async def pause(state: SimState, seconds: float) -> None:
    """Sleep up to ``seconds``, waking early if the server is shutting down (so close() never hangs)."""
    if seconds <= 0:
        return
    try:
        await asyncio.wait_for(state.closing.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def json_answer(
    request: web.Request, data: bytes, headers: Any, rule: FaultRule | None
) -> web.StreamResponse:
    """A 200 JSON answer as the fault rule breaks it: ``malformed_json`` stops mid-document (with a
    content-length that matches what is sent); ``cut`` promises the full length, delivers half, then
    resets, so the client sees a truncated body. Any other rule (or none): the whole answer."""
    if rule is not None and rule.kind == "malformed_json":
        return web.Response(body=data[: len(data) // 2], status=200, headers=headers)
    if rule is None or rule.kind != "cut":
        return web.Response(body=data, status=200, headers=headers)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    abort_connection(request)
    return response

