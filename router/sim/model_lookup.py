"""The sim's ``GET /v1/models/{model_id}``: one model of the listing, or the API's 404 for an unknown id.

Owns nothing but the lookup; the entries are ``endpoints.handle_models``' own (never faulted, like it).
"""

from __future__ import annotations

from aiohttp import web

from router.sim.config import KNOWN_MODELS
from router.sim.endpoints import _CREATED, _display_name
from router.sim.state import STATE_KEY
from router.sim.wire import common_headers, error_response, json_response, new_request_id


async def handle_model(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.record(request, None, "models")
    headers = common_headers(new_request_id(), state.served)
    model = request.match_info["model_id"]
    if model not in KNOWN_MODELS:
        return error_response(404, headers, f"model: {model}")
    entry = {"type": "model", "id": model, "display_name": _display_name(model), "created_at": f"{_CREATED[model]}T00:00:00Z"}
    return json_response(entry, headers=headers)
