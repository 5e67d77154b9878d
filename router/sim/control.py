"""Test control endpoints under ``/_sim/``: change faults and profiles, reset, read the request log and stats.

Owns decoding control payloads (strictly, with the same types as config files) and rendering state for
tests. These endpoints are for tests and demos only; they are not part of Anthropic's API.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from aiohttp import web

from router.sim.config import FaultRule, LatencyProfile
from router.sim.state import STATE_KEY


class _FaultsPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    faults: list[FaultRule]


class _ProfilesPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    profiles: dict[str, LatencyProfile]


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


async def _decode(request: web.Request, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.ValidationError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}), content_type="application/json") from None
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid JSON: {exc}"}), content_type="application/json") from None


async def put_faults(request: web.Request) -> web.Response:
    payload: _FaultsPayload = await _decode(request, _FaultsPayload)
    request.app[STATE_KEY].set_faults(payload.faults)
    return _reply({"faults": msgspec.to_builtins(payload.faults)})


async def put_profiles(request: web.Request) -> web.Response:
    payload: _ProfilesPayload = await _decode(request, _ProfilesPayload)
    request.app[STATE_KEY].set_profiles(payload.profiles)
    return _reply({"profiles": msgspec.to_builtins(payload.profiles)})


async def post_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return _reply({"ok": True})


async def get_requests(request: web.Request) -> web.Response:
    return _reply({"requests": list(request.app[STATE_KEY].log)})


async def delete_requests(request: web.Request) -> web.Response:
    request.app[STATE_KEY].log.clear()
    return _reply({"ok": True})


async def get_stats(request: web.Request) -> web.Response:
    return _reply(request.app[STATE_KEY].stats())


def add_control_routes(app: web.Application) -> None:
    app.router.add_put("/_sim/faults", put_faults)
    app.router.add_put("/_sim/profiles", put_profiles)
    app.router.add_post("/_sim/reset", post_reset)
    app.router.add_get("/_sim/requests", get_requests)
    app.router.add_delete("/_sim/requests", delete_requests)
    app.router.add_get("/_sim/stats", get_stats)
