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
from router.errors import AuthenticationFailed, ClientFacingError, InvalidRequest, NotFound
from router.facts import request_facts
from router.headers import client_credential, upstream_headers
from router.plan import AUTO, Plan, plan
from router.replies import failure_reply, json_reply, router_headers, stream_reply
from router.services import Services
from router.sticky import conversation_key
from router.stream import StreamStats, open_stream, relay
from router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from router.policy.limits import rate_limited
from router.policy.loader import Policy
from router.policy.spend import EXCEEDED_DOWNGRADE, EXCEEDED_REJECT, budget_exceeded, cost_usd
from router.policy.tenants import TenantView, hash_key
from router.policy.tools import explain
from router.upstream import Outbound
from router.view import ParsedRequest, parse_request

log = logging.getLogger("router.access")


def _services(request: Request[Any, Any, Any]) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _path_qs(request: Request[Any, Any, Any], path: str) -> str:
    query = request.scope.get("query_string", b"")
    return path + "?" + query.decode("latin-1") if query else path


def _tenant(request: Request[Any, Any, Any], svc: Services, policy: Policy) -> TenantView:
    """Who is calling: the tenant the key maps to (401 for an unknown key unless the policy is open)."""
    key = client_credential(request.headers.items())
    if key is None and not policy.tenants.open_mode:
        raise AuthenticationFailed("missing credentials: send your key in x-api-key or Authorization: Bearer")
    return svc.tenants(policy).resolve(key)


def _admit(svc: Services, who: TenantView, estimated_tokens: int) -> str | None:
    """Rate limit and budget; returns the tier to downgrade to when the budget says so."""
    tenant = who.tenant
    if tenant is None:
        return None
    decision = svc.limiter.check(who.name, tenant.rate_limit, estimated_tokens)
    if not decision.admitted:
        raise rate_limited(who.name, decision)
    budget = svc.ledger.check(who.name, tenant.budget)
    if budget.status == EXCEEDED_REJECT:
        svc.limiter.settle(who.name, tenant.rate_limit, 0, estimated_tokens)
        raise budget_exceeded(who.name, budget)
    return budget.downgrade_tier if budget.status == EXCEEDED_DOWNGRADE else None


def _account(
    svc: Services, policy: Policy, who: TenantView, estimated: int, model: str | None, usage: dict[str, int]
) -> None:
    """After the answer: correct the token bucket to what was used and add the cost to the budget."""
    tenant = who.tenant
    if tenant is None:
        return
    used = sum(usage.values())
    svc.limiter.settle(who.name, tenant.rate_limit, used, estimated)
    info = policy.tiers.models.get(model or "")
    if info is not None and used:
        svc.ledger.add(
            who.name,
            cost_usd(
                info,
                usage.get("input_tokens", 0),
                usage.get("output_tokens", 0),
                usage.get("cache_read_input_tokens", 0),
                usage.get("cache_creation_input_tokens", 0),
            ),
        )


def _usage(body: bytes) -> dict[str, int]:
    try:
        usage = msgspec.json.decode(body).get("usage") or {}
    except (msgspec.DecodeError, AttributeError):
        return {}
    return {k: v for k, v in usage.items() if isinstance(v, int)}


async def _forward(request: Request[Any, Any, Any], path: str, *, messages: bool) -> ASGIResponse:
    """Route and relay. ``messages`` is False for count_tokens: no classification, no streaming."""
    svc = _services(request)
    policy = svc.store.current  # one policy version for the whole request, whatever reloads meanwhile
    who = _tenant(request, svc, policy)
    parsed = parse_request(await request.body(), require_messages=True)
    started = svc.clock()
    estimated = len(parsed.raw) // 4
    # count_tokens is free and rate-limited separately upstream: no tenant limits or budget there.
    downgrade = _admit(svc, who, estimated) if messages else None
    classification = None
    if messages and parsed.view.model == AUTO:
        triage = await svc.triage.classify(parsed.body, threshold=policy.classifier.confidence_threshold)
        classification = triage.classification
    facts = request_facts(parsed, request.headers.items(), who.name, classification)
    now = svc.clock()
    cooling = svc.cooldowns.active(now)
    conversation = conversation_key(parsed.body, who.name) if messages else None
    try:
        decision = plan(facts, policy, cooling, now, who.tenant, downgrade, svc.sticky.get(conversation))
    except ClientFacingError:
        _account(svc, policy, who, estimated, None, {})
        raise
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
            _account(svc, policy, who, estimated, None, {})
            return failure_reply(decision, result, svc.clock(), cooling)
        opened = result.success
        answered = result.target.model if result.target else None
        if decision.action is not None and decision.action.sticky and answered:
            svc.sticky.remember(conversation, answered)

        def on_end(stats: StreamStats) -> None:
            _log(decision, result, parsed, started, svc, stats)
            usage = {"input_tokens": stats.input_tokens, "output_tokens": stats.output_tokens}
            _account(svc, policy, who, estimated, answered, usage)

        return stream_reply({**opened.headers, **router_headers(decision, result), **extra}, relay(opened, on_end))

    result = await svc.dispatcher.run(decision, partial(attempt_json, out), deadline, cooldown_s)
    _log(decision, result, parsed, started, svc)
    if result.success is None:
        _account(svc, policy, who, estimated, None, {})
        return failure_reply(decision, result, svc.clock(), cooling)
    reply = result.success
    if decision.action is not None and decision.action.sticky and result.target is not None:
        svc.sticky.remember(conversation, result.target.model)
    if messages and who.tenant is not None:
        _account(svc, policy, who, estimated, result.target.model if result.target else None, _usage(reply.body))
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
    svc = _services(request)
    _tenant(request, svc, svc.store.current)


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


@post("/v1/router/explain", status_code=200)
async def explain_request(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Where this Messages request would go and why, under the current policy. Nothing is sent upstream;
    model ``auto`` is classified locally (no Haiku call)."""
    svc = _services(request)
    policy = svc.store.current
    who = _tenant(request, svc, policy)
    parsed = parse_request(await request.body(), require_messages=True)
    classification = None
    if parsed.view.model == AUTO:
        classification = (await svc.triage.classify(parsed.body, local_only=True)).classification
    headers = {name.lower(): value for name, value in request.headers.items() if name.lower().startswith(("x-router-", "anthropic-beta"))}
    report = explain(policy, parsed.body, headers=headers, tenant=who.name if who.tenant else None, classification=classification)
    return json_reply(200, {}, msgspec.json.encode(report))


@post("/v1/router/admin/reload", status_code=200)
async def admin_reload(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Reload the policy directory now. Needs the admin key (``ROUTER_ADMIN_KEY_HASH``)."""
    svc = _services(request)
    expected = svc.settings.admin_key_hash
    if expected is None:
        raise ClientFacingError("the admin endpoint is disabled: set ROUTER_ADMIN_KEY_HASH", status=403)
    key = client_credential(request.headers.items())
    if key is None or hash_key(key) != expected:
        raise AuthenticationFailed("admin key required")
    result = await svc.store.reload("admin")
    return json_reply(200 if result.ok else 422, {}, msgspec.json.encode(result))


@get("/metrics")
async def metrics(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Prometheus exposition. Label values come from policy, never from keys or client strings."""
    body = _services(request).metrics.render()
    return ASGIResponse(body=body, status_code=200, media_type=METRICS_CONTENT_TYPE)


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


ROUTES = [
    create_message,
    count_tokens,
    classify,
    explain_request,
    admin_reload,
    list_models,
    get_model,
    metrics,
    livez,
    readyz,
]
