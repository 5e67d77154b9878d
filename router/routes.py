"""HTTP handlers: the Messages API surface, models listing and health.

Each handler reads the request, asks ``plan`` for targets, hands them to the dispatcher with the right
attempt function, and turns the result into a reply. Policy and decisions live elsewhere; handlers keep to
wiring so the hot path stays short and readable.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response.base import ASGIResponse

from router.dispatch import attempt_json
from router.classify.features import prompt_body
from router.classify.schema import Classification
from router.errors import AuthenticationFailed, InvalidRequest, NotFound
from router.facts import request_facts
from router.headers import client_credential, upstream_headers
from router.plan import AUTO, Plan, plan
from router.replies import failure_reply, json_reply, router_headers, stream_reply
from router.services import Services
from router.stream import StreamStats, open_stream, relay
from router.upstream import Outbound
from router.view import ParsedRequest, parse_request

log = logging.getLogger("router.access")


def _services(request: Request[Any, Any, Any]) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _path_qs(request: Request[Any, Any, Any], path: str) -> str:
    query = request.scope.get("query_string", b"")
    return path + "?" + query.decode("latin-1") if query else path


async def _read(request: Request[Any, Any, Any], *, require_messages: bool) -> ParsedRequest:
    if client_credential(request.headers.items()) is None:
        raise AuthenticationFailed("missing credentials: send your key in x-api-key or Authorization: Bearer")
    return parse_request(await request.body(), require_messages=require_messages)


async def _forward(request: Request[Any, Any, Any], path: str, *, messages: bool) -> ASGIResponse:
    """Route and relay. ``messages`` is False for count_tokens: no classification, no streaming."""
    svc = _services(request)
    policy = svc.store.current  # one policy version for the whole request, whatever reloads meanwhile
    parsed = await _read(request, require_messages=True)
    started = svc.clock()
    classification = None
    if messages and parsed.view.model == AUTO:
        triage = await svc.triage.classify(parsed.body, threshold=policy.classifier.confidence_threshold)
        classification = triage.classification
    facts = request_facts(parsed, request.headers.items(), None, classification)
    now = svc.clock()
    cooling = svc.cooldowns.active(now)
    decision = plan(facts, policy, cooling, now)
    out = Outbound(
        svc.upstream,
        svc.settings,
        _path_qs(request, path),
        upstream_headers(request.headers.items(), svc.upstream.api_key),
        parsed,
        policy.tiers.models,
        decision.action,
    )
    deadline = started + svc.settings.request_timeout
    extra = _classification_headers(classification)
    cooldown_s = policy.tiers.default_cooldown_seconds

    if messages and parsed.view.stream:
        result = await svc.dispatcher.run(decision, partial(open_stream, out), deadline, cooldown_s)
        if result.success is None:
            _log(decision, result, parsed, started, svc)
            return failure_reply(decision, result, svc.clock(), cooling)
        opened = result.success
        on_end = partial(_log, decision, result, parsed, started, svc)
        return stream_reply({**opened.headers, **router_headers(decision, result), **extra}, relay(opened, on_end))

    result = await svc.dispatcher.run(decision, partial(attempt_json, out), deadline, cooldown_s)
    _log(decision, result, parsed, started, svc)
    if result.success is None:
        return failure_reply(decision, result, svc.clock(), cooling)
    reply = result.success
    return json_reply(reply.status, {**reply.headers, **router_headers(decision, result), **extra}, reply.body)


def _classification_headers(classification: Classification | None) -> dict[str, str]:
    """``x-router-classification`` for requests the router classified (model ``auto``)."""
    if classification is None:
        return {}
    return {
        "x-router-classification": (
            f"category={classification.category}; complexity={classification.complexity}; "
            f"stage={classification.stage}; confidence={classification.confidence:.2f}"
        )
    }


def _log(
    decision: Plan,
    result: Any,
    parsed: ParsedRequest,
    started: float,
    svc: Services,
    stats: StreamStats | None = None,
) -> None:
    """One line per request, at its end: the decision and its outcome. Never the prompt, never a key.

    The requested model is logged only when it is a router alias or a model the tier table knows: a free
    client string is not something to copy into logs."""
    if not log.isEnabledFor(logging.INFO):
        return
    target = result.target
    requested = parsed.view.model
    tiers = svc.store.current.tiers
    known = requested == AUTO or requested in tiers.tiers or tiers.tier_of_model(requested) is not None
    line: dict[str, Any] = {
        "requested": requested if known else "other",
        "tier": target.tier if target else decision.tier,
        "model": target.model[:64] if target else None,
        "rule": decision.rule,
        "attempts": [f"{m}:{o}" for m, o in result.attempts],
        "stream": parsed.view.stream,
        "ok": result.success is not None,
        "ms": round((svc.clock() - started) * 1000, 2),
    }
    if stats is not None:
        line["end"] = stats.end
        line["ok"] = stats.end == "complete"
        line["input_tokens"] = stats.input_tokens
        line["output_tokens"] = stats.output_tokens
        if stats.first_content_at is not None:
            line["ttft_ms"] = round((stats.first_content_at - started) * 1000, 2)
    log.info("%s", msgspec.json.encode(line).decode())


@post("/v1/messages", status_code=200)
async def create_message(request: Request[Any, Any, Any]) -> ASGIResponse:
    # Annotated as the base class: Litestar relays an ASGIResponse (streaming included) without re-encoding.
    return await _forward(request, "/v1/messages", messages=True)


@post("/v1/messages/count_tokens", status_code=200)
async def count_tokens(request: Request[Any, Any, Any]) -> ASGIResponse:
    # Free and separately rate-limited upstream: never classified, never sent to Haiku for triage.
    return await _forward(request, "/v1/messages/count_tokens", messages=False)


def _model_entries(svc: Services) -> list[dict[str, Any]]:
    tiers = svc.store.current.tiers
    created = "2025-01-01T00:00:00Z"
    default = tiers.tiers[tiers.default_tier]
    entries: list[dict[str, Any]] = [
        {
            "type": "model",
            "id": AUTO,
            "display_name": f"Router: automatic tier (today: {tiers.default_tier} -> {default.primary})",
            "created_at": created,
            "router": {"kind": "auto", "tier": tiers.default_tier, "model": default.primary},
        }
    ]
    for name, tier in tiers.tiers.items():
        chain = [tier.primary, *(tiers.tiers[t].primary for t in tier.fallback)]
        entries.append(
            {
                "type": "model",
                "id": name,
                "display_name": f"Router tier {name} -> {tier.primary}",
                "created_at": created,
                "router": {"kind": "tier", "tier": name, "model": tier.primary, "fallback": chain},
            }
        )
    for name, tier in tiers.tiers.items():
        for model in tier.models:
            entries.append(
                {
                    "type": "model",
                    "id": model,
                    "display_name": model,
                    "created_at": created,
                    "router": {"kind": "model", "tier": name, "primary": model == tier.primary},
                }
            )
    return entries


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> ASGIResponse:
    """The router's tiers and the upstream models they map to, in the shape of Anthropic's model list."""
    await _read_auth_only(request)
    entries = _model_entries(_services(request))
    body = {"data": entries, "has_more": False, "first_id": entries[0]["id"], "last_id": entries[-1]["id"]}
    return json_reply(200, {}, msgspec.json.encode(body))


@get("/v1/models/{model_id:str}")
async def get_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> ASGIResponse:
    await _read_auth_only(request)
    for entry in _model_entries(_services(request)):
        if entry["id"] == model_id:
            return json_reply(200, {}, msgspec.json.encode(entry))
    raise NotFound(f"model: {model_id} is neither a router tier nor a model in the tier table")


async def _read_auth_only(request: Request[Any, Any, Any]) -> None:
    if client_credential(request.headers.items()) is None:
        raise AuthenticationFailed("missing credentials: send your key in x-api-key or Authorization: Bearer")


@post("/v1/router/classify", status_code=200)
async def classify(request: Request[Any, Any, Any]) -> ASGIResponse:
    """The triage classification of one request body (a Messages request or ``{"prompt": ...}``)."""
    await _read_auth_only(request)
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not ("messages" in body or isinstance(body.get("prompt"), str)):
        raise InvalidRequest("expected a Messages request body or {\"prompt\": \"...\"}")
    if "messages" not in body:
        body = prompt_body(body["prompt"])
    elif not isinstance(body["messages"], list):
        raise InvalidRequest("messages: expected a list")
    local_only = request.query_params.get("local_only") in ("1", "true")
    svc = _services(request)
    threshold = svc.store.current.classifier.confidence_threshold
    result = await svc.triage.classify(body, local_only=local_only, threshold=threshold)
    return json_reply(200, {}, msgspec.json.encode(result.classification))


@get("/livez")
async def livez() -> ASGIResponse:
    """The process answers. No dependency checks: a slow upstream must not get the pod restarted."""
    return json_reply(200, {}, b'{"status":"ok"}')


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Ready to take traffic: policies loaded. Never calls Anthropic."""
    svc = _services(request)
    tiers = svc.store.current.tiers
    details = {
        "status": "ready",
        "upstream": svc.upstream_kind,
        "policy": svc.store.details(),
        "tiers": {name: tier.primary for name, tier in tiers.tiers.items()},
        "default_tier": tiers.default_tier,
        "cooling": sorted(svc.cooldowns.active(svc.clock())),
    }
    return json_reply(200, {}, msgspec.json.encode(details))


ROUTES = [create_message, count_tokens, classify, list_models, get_model, livez, readyz]
