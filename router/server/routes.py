"""Litestar handlers for everything but the proxy routes: the router's own endpoints (classify, explain,
admin reload), models listing, metrics and health.

Handlers are wiring: tenant checks are ``admission``, decisions ``plan``. Two route lists, one per
listener: ``CLIENT_ROUTES`` for the client port (the Anthropic API's models listing, ``/livez``, a bare
``/readyz`` and -- when the policy says so -- a tenant-authenticated, tenant-limited classify), and
``ADMIN_ROUTES`` for the admin listener (metrics, detailed readiness with tenant-free but operational
details, reload, explain, classify, the OpenAPI document). ``POST /v1/messages`` and ``count_tokens`` are
served by ``router.server.asgi`` in front of the client routes.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response.base import ASGIResponse

from router.classify.features import prompt_body
from router.errors import AuthenticationFailed, ClientFacingError, InvalidRequest, NotFound
from router.gateway.plan import AUTO
from router.gateway.record import record_triage
from router.tenancy.admission import admit, client_credential, settle, tenant_of
from router.tenancy.tenants import TenantView
from router.gateway.services import Services
from router.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from router.policy.keys import hash_key
from router.gateway.explain import explain
from router.gateway.passthrough import PassRequest, pass_through
from router.gateway.replies import Reply
from router.gateway.view import decode_body, parse_request
from router.server.status import StatusPage, status_snapshot


def _services(request: Request[Any, Any, Any]) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _json(status: int, body: bytes) -> ASGIResponse:
    # Annotated as the base class: Litestar sends an ASGIResponse as it is, without re-encoding.
    return ASGIResponse(body=body, status_code=status, media_type="application/json")


CREATED_AT = "2025-01-01T00:00:00Z"
CREATED = 1735689600
"""The listing's one date, in both SDKs' forms: Anthropic's ``created_at`` (RFC 3339) and OpenAI's
``created`` (Unix seconds) -- the same instant."""


def _entry(model_id: str, display_name: str, owner: str, router: dict[str, Any]) -> dict[str, Any]:
    """One model in a listing both SDKs read: Anthropic's fields (``type``, ``display_name``, ``created_at``)
    and OpenAI's (``object``, ``created``, ``owned_by``); each SDK ignores the other's."""
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": CREATED_AT,
        "object": "model",
        "created": CREATED,
        "owned_by": owner,
        "router": router,
    }


def _model_entries(svc: Services) -> list[dict[str, Any]]:
    tiers = svc.store.current.tiers
    default = tiers.tiers[tiers.default_tier]
    entries: list[dict[str, Any]] = [
        _entry(
            AUTO,
            f"Router: automatic tier (today: {tiers.default_tier} -> {default.primary})",
            "router",
            {"kind": "auto", "tier": tiers.default_tier, "model": default.primary},
        )
    ]
    for name, tier in tiers.tiers.items():
        chain = [tier.primary, *(tiers.tiers[t].primary for t in tier.fallback)]
        entries.append(
            _entry(
                name,
                f"Router tier {name} -> {tier.primary}",
                "router",
                {"kind": "tier", "tier": name, "model": tier.primary, "fallback": chain},
            )
        )
    for name, tier in tiers.tiers.items():
        for model in tier.models:
            entries.append(
                _entry(model, model, "anthropic", {"kind": "model", "tier": name, "primary": model == tier.primary})
            )
    return entries


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> ASGIResponse:
    """The router's tiers and the upstream models they map to, in a shape both the Anthropic SDK (``data``,
    ``has_more``, ``first_id``, ``last_id``) and the OpenAI SDK (``object: list``, ``data``) read."""
    await _read_auth_only(request)
    entries = _model_entries(_services(request))
    body = {
        "object": "list",
        "data": entries,
        "has_more": False,
        "first_id": entries[0]["id"],
        "last_id": entries[-1]["id"],
    }
    return _json(200, msgspec.json.encode(body))


@get("/v1/models/{model_id:str}")
async def get_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> ASGIResponse:
    """A router id (``auto``, a tier name) is answered here, with its ``router`` details; any other id is
    the upstream's to answer (its lifecycle, limits and a 404 for an unknown id), forwarded as it is."""
    svc = _services(request)
    policy = svc.store.current
    tenant_of(request.headers.items(), svc.tenancy, policy)
    if model_id == AUTO or model_id in policy.tiers.tiers:
        for entry in _model_entries(svc):
            if entry["id"] == model_id:
                return _json(200, msgspec.json.encode(entry))
    query = request.scope.get("query_string", b"")
    target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    forwarded = PassRequest(
        "GET", request.url.path, target + ("?" + query.decode("latin-1") if query else ""),
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.scope["headers"]], b"",
    )
    reply = await pass_through(forwarded, svc)
    assert isinstance(reply, Reply)  # models lookups are read whole
    if reply.after is not None:
        reply.after()
    return ASGIResponse(body=reply.body, status_code=reply.status, headers=reply.headers)


async def _read_auth_only(request: Request[Any, Any, Any]) -> None:
    svc = _services(request)
    tenant_of(request.headers.items(), svc.tenancy, svc.store.current)


async def _classify(request: Request[Any, Any, Any], who: TenantView | None) -> ASGIResponse:
    body = decode_body(await request.body())
    if not isinstance(body, dict) or not ("messages" in body or isinstance(body.get("prompt"), str)):
        raise InvalidRequest("expected a Messages request body or {\"prompt\": \"...\"}")
    if "messages" not in body:
        body = prompt_body(body["prompt"])
    elif not isinstance(body["messages"], list):
        raise InvalidRequest("messages: expected a list")
    local_only = request.query_params.get("local_only") in ("1", "true")
    svc = _services(request)
    policy = svc.store.current
    # The tenant's request rate and budget, as for a Messages request (nothing is reserved: no tokens out).
    reservation = await admit(svc.tenancy, who, 0, policy, 0) if who is not None else None
    started = svc.clock()
    try:
        result = await svc.triage.classify(body, local_only=local_only, threshold=policy.classifier.confidence_threshold)
    except BaseException:
        settle(svc.tenancy, reservation, {}, 0.0)
        raise
    record_triage(svc.metrics, policy, result, svc.clock() - started, policy.classifier.haiku.model)
    usd = result.haiku.usd if result.haiku is not None else 0.0
    settle(svc.tenancy, reservation, {}, usd)  # the Haiku call is the tenant's spend, not the router's
    if who is not None and usd:
        svc.metrics.tenant_spend.labels(who.name).inc(usd)
    return _json(200, msgspec.json.encode(result.classification))


@post("/v1/router/classify", status_code=200)
async def classify(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Admin listener: the triage classification of one request body (a Messages request or ``{"prompt": ...}``)."""
    await _read_auth_only(request)
    return await _classify(request, None)


@post("/v1/router/classify", status_code=200)
async def tenant_classify(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Client port: the same, for tenants, only when ``tenants.yaml`` sets ``classify_endpoint: true``; with
    the tenant's key, under its rate limit and budget, and the Haiku cost charged to it."""
    svc = _services(request)
    policy = svc.store.current
    if not policy.tenants.classify_endpoint:
        raise NotFound("not found: /v1/router/classify is served on the admin listener (tenants.yaml: classify_endpoint)")
    who = tenant_of(request.headers.items(), svc.tenancy, policy)
    return await _classify(request, who)


@post("/v1/router/explain", status_code=200)
async def explain_request(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Where this Messages request would go and why, under the current policy. Nothing is sent upstream;
    model ``auto`` is classified locally (no Haiku call)."""
    svc = _services(request)
    policy = svc.store.current
    who = tenant_of(request.headers.items(), svc.tenancy, policy)
    parsed = parse_request(await request.body(), require_messages=True)
    classification = None
    if parsed.view.model == AUTO:
        classification = (await svc.triage.classify(parsed.body, local_only=True)).classification
    headers = {name.lower(): value for name, value in request.headers.items() if name.lower().startswith(("x-router-", "anthropic-beta"))}
    report = explain(policy, parsed.body, headers=headers, tenant=who.name if who.tenant else None, classification=classification)
    return _json(200, msgspec.json.encode(report))


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
    return _json(200 if result.ok else 422, msgspec.json.encode(result))


@get("/metrics")
async def metrics(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Prometheus exposition. Label values come from policy, never from keys or client strings."""
    body = _services(request).metrics.render()
    return ASGIResponse(body=body, status_code=200, media_type=METRICS_CONTENT_TYPE)


@get("/livez")
async def livez() -> ASGIResponse:
    """The process answers. No dependency checks: a slow upstream must not get the pod restarted."""
    return _json(200, b'{"status":"ok"}')


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Client port: ready to take traffic (policies loaded, not draining), status only. Never calls Anthropic."""
    if _services(request).draining:
        return _json(503, b'{"status":"draining"}')
    return _json(200, b'{"status":"ready"}')


@get("/readyz")
async def readyz_details(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Admin listener: readiness with the policy version, the last reload (with its errors), tiers and
    models cooling down. Never calls Anthropic."""
    svc = _services(request)
    tiers = svc.store.current.tiers
    details = {
        "status": "draining" if svc.draining else "ready",
        "upstream": svc.upstream_kind,
        "policy": svc.store.details(),
        "tiers": {name: tier.primary for name, tier in tiers.tiers.items()},
        "default_tier": tiers.default_tier,
        "cooling": sorted(svc.cooldowns.active(svc.clock())),
        "state": svc.state_report(),  # degraded state is reported, never a reason to be unready
    }
    return _json(503 if svc.draining else 200, msgspec.json.encode(details))


@get("/v1/router/openapi.json")
async def openapi(request: Request[Any, Any, Any]) -> ASGIResponse:
    """The OpenAPI document of the router's own endpoints (``router.server.openapi``)."""
    return _json(200, request.app.state.openapi)


@get("/v1/router/status")
async def router_status(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Admin listener: the status page's numbers (``router.server.status``), from the same samples
    ``/metrics`` renders (summed over workers), plus cooldowns, the policy store and the state backend."""
    svc = _services(request)
    now = svc.clock()
    cooling = {model: until - now for model, until in svc.cooldowns.active(now).items()}
    snapshot = status_snapshot(
        svc.metrics.samples(),
        svc.store.current,
        now=time.time(),
        policy_details=svc.store.details(),
        state=svc.state_report(),
        cooling=cooling,
        upstream=svc.upstream_kind,
        draining=svc.draining,
    )
    body = msgspec.json.encode(snapshot)
    return ASGIResponse(body=body, status_code=200, media_type="application/json", headers={"cache-control": "no-store"})


@get(["/", "/dashboard"])
async def status_page(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Admin listener: the status page, one self-contained HTML document (``status_page.html``)."""
    page: StatusPage = request.app.state.status_page
    headers = {
        "cache-control": "no-store",
        "content-security-policy": page.csp,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }
    return ASGIResponse(body=page.body, status_code=200, media_type="text/html", headers=headers)


# ``POST /v1/messages`` and ``count_tokens`` are served by ``router.server.asgi`` in front of these routes.
CLIENT_ROUTES = [list_models, get_model, livez, readyz, tenant_classify]
ADMIN_ROUTES = [
    classify, explain_request, admin_reload, metrics, livez, readyz_details, openapi, router_status, status_page
]
