"""The sim's smaller API endpoints: ``count_tokens``, ``GET /v1/models`` and the 404 for unknown paths.

Owns their response bodies. Faults apply to ``count_tokens`` only through rules whose endpoint is
``count_tokens`` or ``*``; the models listing is never faulted, so clients can always discover models.
"""

from __future__ import annotations

from aiohttp import web

from router.sim.breaks import abort_connection, pause, status_fault_response
from router.sim.config import KNOWN_MODELS
from router.sim.content import estimate_input_tokens
from router.sim.intake import receive, reject
from router.sim.state import STATE_KEY
from router.sim.wire import common_headers, error_response, json_response, new_request_id

# Release dates are illustrative; clients only need a well-formed RFC 3339 value.
_CREATED = {
    "claude-haiku-4-5": "2025-10-01",
    "claude-haiku-5-5": "2026-08-01",
    "claude-sonnet-4-5": "2025-09-29",
    "claude-sonnet-4-6": "2026-02-17",
    "claude-sonnet-5-5": "2026-08-01",
    "claude-opus-4-5": "2025-11-24",
    "claude-opus-4-6": "2026-02-05",
    "claude-opus-4-7": "2026-04-01",
    "claude-opus-4-8": "2026-06-01",
    "claude-opus-5-5": "2026-09-01",
}


async def handle_count_tokens(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    received = await receive(request, state, "count_tokens")
    rejected = reject(received, state, ("model", "messages"))
    if rejected is not None:
        return rejected
    rule = state.faults.select(received.body["model"], "count_tokens")
    if rule is not None:
        state.note_fault(received.entry, rule)
        # count_tokens never streams, so stream-only kinds and "cut" become a 529 here.
        failed = status_fault_response(rule, received.headers, stream=False)
        if failed is not None:
            return failed
        if rule.kind == "connect_refused":
            abort_connection(request)
            return web.Response(status=204)  # never delivered: the connection is already gone
        if rule.kind == "stall":
            await pause(state, rule.stall_s)
        elif rule.kind == "cut":
            return error_response(529, received.headers)
    return json_response({"input_tokens": estimate_input_tokens(received.raw)}, headers=received.headers)


def _display_name(model: str) -> str:
    _, family, major, minor = model.split("-")
    return f"Claude {family.capitalize()} {major}.{minor}"


async def handle_models(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.record(request, None, "models")
    data = [
        {
            "type": "model",
            "id": model,
            "display_name": _display_name(model),
            "created_at": f"{_CREATED[model]}T00:00:00Z",
        }
        for model in KNOWN_MODELS
    ]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return json_response(body, headers=common_headers(new_request_id(), state.served))


async def handle_not_found(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    headers = common_headers(new_request_id(), state.served)
    return error_response(404, headers, f"Not found: {request.method} {request.path}")
