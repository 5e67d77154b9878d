"""The sim's Message Batches API: create, retrieve, list, results (JSONL), cancel and delete, in memory.

Owns the batch objects and their lifecycle. A batch is ``in_progress`` when created and ``ended`` at the
first retrieve (or list, or results) at least ``processing_ms`` after its creation (0 by default: the first
retrieve sees it ended), so tests and demos never wait. Each valid request gets a ``succeeded`` result
whose message is what ``POST /v1/messages`` would answer (the same content functions, usage included); a
request the Messages endpoint would refuse (missing fields, a ``does-not-exist`` model) gets an
``errored`` result. ``PUT /_sim/batches {"processing_ms": N}`` changes the delay (a test control, like
``/_sim/faults``; batches and the setting survive ``POST /_sim/reset``). Every request is logged in the sim's request log (``GET /_sim/requests``), so a test
can see the models a batch named after the router rewrote them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from aiohttp import web

from router.sim.content import estimate_input_tokens, message_body, new_id, plan_answer
from router.sim.state import STATE_KEY, SimState
from router.sim.wire import common_headers, error_body, error_response, json_response, new_request_id

_REQUIRED = ("model", "messages", "max_tokens")
_EXPIRY = timedelta(hours=24)


class _Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    processing_ms: int = 0


@dataclass
class Batch:
    id: str
    created: datetime
    requests: list[dict[str, Any]]
    results: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    ended: datetime | None = None
    cancel_initiated: datetime | None = None


class BatchStore:
    """Every batch of one sim app, newest last."""

    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}
        self.processing_ms = 0

    def advance(self, batch: Batch, state: SimState) -> None:
        """End ``batch`` when its processing time has passed (results computed once, at the end)."""
        if batch.status == "ended":
            return
        now = datetime.now(timezone.utc)
        if batch.status == "in_progress" and (now - batch.created).total_seconds() * 1000 < self.processing_ms:
            return
        canceled = batch.status == "canceling"
        batch.results = [_result(item, state, canceled) for item in batch.requests]
        batch.status, batch.ended = "ended", now


def _rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _result(item: dict[str, Any], state: SimState, canceled: bool) -> dict[str, Any]:
    custom_id = item.get("custom_id")
    if canceled:
        return {"custom_id": custom_id, "result": {"type": "canceled"}}
    params = item.get("params")
    problem = _invalid(params)
    if problem is not None:
        envelope = error_body(problem[0], problem[1], new_request_id())
        return {"custom_id": custom_id, "result": {"type": "errored", "error": envelope}}
    assert isinstance(params, dict)
    model = params["model"]
    answer = plan_answer(params, state.profile_for(model), state.seed)
    raw = json.dumps(params, separators=(",", ":")).encode()
    message = message_body(answer, model=model, msg_id=new_id("msg_sim_"), input_tokens=estimate_input_tokens(raw))
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


def _invalid(params: Any) -> tuple[int, str] | None:
    """Why the Messages endpoint would refuse ``params`` (status, message), or None."""
    if not isinstance(params, dict):
        return 400, "params: Input should be an object"
    for name in _REQUIRED:
        if name not in params:
            return 400, f"params.{name}: Field required"
    if not isinstance(params["model"], str) or not isinstance(params["messages"], list):
        return 400, "params: model must be a string and messages an array"
    if "does-not-exist" in params["model"]:
        return 404, f"model: {params['model']}"
    return None


def _counts(batch: Batch) -> dict[str, int]:
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if batch.status != "ended":
        counts["processing"] = len(batch.requests)
        return counts
    for line in batch.results:
        counts[line["result"]["type"]] += 1
    return counts


def _view(batch: Batch, request: web.Request) -> dict[str, Any]:
    ended = batch.status == "ended"
    # Like the API's own: an absolute URL on the host the client called (a router rewrites it to itself).
    results_url = f"{request.scheme}://{request.host}/v1/messages/batches/{batch.id}/results" if ended else None
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.status,
        "request_counts": _counts(batch),
        "ended_at": _rfc3339(batch.ended),
        "created_at": _rfc3339(batch.created),
        "expires_at": _rfc3339(batch.created + _EXPIRY),
        "archived_at": None,
        "cancel_initiated_at": _rfc3339(batch.cancel_initiated),
        "results_url": results_url,
    }


def _store(request: web.Request) -> BatchStore:
    return request.app[BATCHES_KEY]


async def _read_json(request: web.Request, state: SimState, endpoint: str) -> tuple[Any, dict[str, str], str | None]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        body, problem = None, f"The request body is not valid JSON: {exc}"
    else:
        problem = None if body is not None else "The request body is empty; expected a JSON object"
    state.record(request, body, endpoint)
    return body, common_headers(new_request_id(), state.served), problem


async def create_batch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    body, headers, problem = await _read_json(request, state, "batches")
    if problem is not None:
        return error_response(400, headers, problem)
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return error_response(400, headers, "requests: expected a non-empty array")
    seen: set[Any] = set()
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str) or "params" not in item:
            return error_response(400, headers, f"requests.{index}: expected {{custom_id, params}}")
        if item["custom_id"] in seen:
            return error_response(400, headers, f"requests.{index}.custom_id: duplicate {item['custom_id']!r}")
        seen.add(item["custom_id"])
    batch = Batch(new_id("msgbatch_sim_"), datetime.now(timezone.utc), requests)
    _store(request).batches[batch.id] = batch
    return json_response(_view(batch, request), headers=headers)


def _find(request: web.Request, endpoint: str) -> tuple[Batch | None, dict[str, str]]:
    state = request.app[STATE_KEY]
    state.record(request, None, endpoint)
    headers = common_headers(new_request_id(), state.served)
    batch = _store(request).batches.get(request.match_info["batch_id"])
    if batch is not None:
        _store(request).advance(batch, state)
    return batch, headers


def _missing(request: web.Request, headers: dict[str, str]) -> web.Response:
    return error_response(404, headers, f"message batch {request.match_info['batch_id']} not found")


async def retrieve_batch(request: web.Request) -> web.StreamResponse:
    batch, headers = _find(request, "batches")
    if batch is None:
        return _missing(request, headers)
    return json_response(_view(batch, request), headers=headers)


async def list_batches(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.record(request, None, "batches")
    headers = common_headers(new_request_id(), state.served)
    store = _store(request)
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "20"))))
    except ValueError:
        return error_response(400, headers, "limit: Input should be a valid integer")
    newest_first = list(reversed(store.batches.values()))
    after = request.query.get("after_id")
    if after is not None:
        ids = [b.id for b in newest_first]
        newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
    page = newest_first[:limit]
    for batch in page:
        store.advance(batch, state)
    data = [_view(b, request) for b in page]
    body = {
        "data": data,
        "has_more": len(newest_first) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return json_response(body, headers=headers)


async def batch_results(request: web.Request) -> web.StreamResponse:
    batch, headers = _find(request, "batch_results")
    if batch is None:
        return _missing(request, headers)
    if batch.status != "ended":
        return error_response(400, headers, f"message batch {batch.id} is still {batch.status}: no results yet")
    # Written line by line, chunked: a results file can be large, and a relay must not need it whole.
    response = web.StreamResponse(status=200, headers={**headers, "content-type": "application/binary"})
    await response.prepare(request)
    for line in batch.results:
        await response.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
    await response.write_eof()
    return response


async def cancel_batch(request: web.Request) -> web.StreamResponse:
    batch, headers = _find(request, "batches")
    if batch is None:
        return _missing(request, headers)
    if batch.status == "in_progress":
        batch.status, batch.cancel_initiated = "canceling", datetime.now(timezone.utc)
    return json_response(_view(batch, request), headers=headers)


async def delete_batch(request: web.Request) -> web.StreamResponse:
    batch, headers = _find(request, "batches")
    if batch is None:
        return _missing(request, headers)
    if batch.status != "ended":
        return error_response(400, headers, f"message batch {batch.id} is still {batch.status}: cancel it first")
    del _store(request).batches[batch.id]
    return json_response({"id": batch.id, "type": "message_batch_deleted"}, headers=headers)


async def put_batch_settings(request: web.Request) -> web.Response:
    try:
        settings = msgspec.json.decode(await request.read(), type=_Settings)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return web.Response(status=400, text=json.dumps({"error": str(exc)}), content_type="application/json")
    _store(request).processing_ms = settings.processing_ms
    return web.Response(text=json.dumps({"processing_ms": settings.processing_ms}), content_type="application/json")


def add_batch_routes(app: web.Application) -> None:
    app[BATCHES_KEY] = BatchStore()
    app.router.add_post("/v1/messages/batches", create_batch)
    app.router.add_get("/v1/messages/batches", list_batches)
    app.router.add_get("/v1/messages/batches/{batch_id}", retrieve_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", batch_results)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", cancel_batch)
    app.router.add_delete("/v1/messages/batches/{batch_id}", delete_batch)
    app.router.add_put("/_sim/batches", put_batch_settings)


BATCHES_KEY: web.AppKey[BatchStore] = web.AppKey("sim_batches", BatchStore)
