"""The forwarding pipeline for ``/v1/messages`` and ``count_tokens``: admit, classify, plan, dispatch,
relay, then account, log and measure.

Owns the order of those steps for one request. Each step's logic lives in its own module; this one only
sequences them and makes sure every request ends in exactly one log line and one ``requests`` count,
whether it is refused, fails upstream or streams to the end.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import msgspec
from router.gateway.usage import of_json as usage_of_json
from router.tenancy.admission import admit, settle, tenant_of
from router.tenancy.state import Reservation
from router.classify.schema import Classification
from router.gateway.dispatch import attempt_json
from router.errors import ClientFacingError
from router.gateway.facts import request_facts
from router.gateway.headers import upstream_headers
from router.gateway.record import record_attempts, record_request, record_triage, record_usage
from router.gateway.plan import AUTO, Plan, plan
from router.policy.loader import Policy
from router.tenancy.tenants import TenantView
from router.gateway.replies import Reply, StreamReply, failure_reply, json_reply, router_headers, stream_reply
from router.gateway.services import Services
from router.gateway.sticky import conversation_key
from router.gateway.stream import Relay, StreamStats, open_stream
from router.gateway.outbound import Outbound
from router.gateway.view import ParsedRequest, parse_request

log = logging.getLogger("router.access")


class Inbound:
    """The client's request as the pipeline reads it: headers (as sent), body bytes, raw query string."""

    __slots__ = ("body", "headers", "query")

    def __init__(self, headers: list[tuple[str, str]], body: bytes, query: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self.query = query

    def path_qs(self, path: str) -> str:
        return path + "?" + self.query.decode("latin-1") if self.query else path


async def forward(request: Inbound, svc: Services, path: str, *, messages: bool) -> Reply | StreamReply:
    """Route and relay. ``messages`` is False for count_tokens: no classification, limits or streaming."""
    started = svc.clock()
    metrics = svc.metrics
    metrics.in_flight.inc()
    streaming = False
    try:
        response, streaming = await _forward(request, svc, path, messages, started)
        return response
    except ClientFacingError:
        record_request(metrics, None, "rejected", svc.clock() - started, False)
        raise
    finally:
        if not streaming:  # a committed stream leaves the in-flight count when it ends
            metrics.in_flight.dec()


async def _forward(
    request: Inbound, svc: Services, path: str, messages: bool, started: float
) -> tuple[Reply | StreamReply, bool]:
    policy = svc.store.current  # one policy version for the whole request, whatever reloads meanwhile
    metrics = svc.metrics
    who = tenant_of(request.headers, svc.tenancy, policy)
    parsed = parse_request(request.body, require_messages=True)
    estimated = len(parsed.raw) // 4
    # count_tokens is free and rate-limited separately upstream: no tenant limits or budget there.
    reservation = await admit(svc.tenancy, who, estimated, policy, parsed.view.max_tokens) if messages else None
    downgrade = reservation.downgrade if reservation is not None else None
    classification = None
    if messages and parsed.view.model == AUTO:
        triage_started = svc.clock()
        triage = await svc.triage.classify(parsed.body, threshold=policy.classifier.confidence_threshold)
        record_triage(metrics, policy, triage, svc.clock() - triage_started, policy.classifier.haiku.model)
        classification = triage.classification
    facts = request_facts(parsed, request.headers, who.name, classification)
    now = svc.clock()
    conversation = conversation_key(parsed.body, who.name) if messages else None
    cooling, remembered = await svc.routing_state(conversation, now)
    try:
        decision = plan(facts, policy, cooling, now, who.tenant, downgrade, remembered)
    except ClientFacingError:
        _settle(svc, who, reservation, {}, 0.0)
        raise
    out = Outbound(
        svc.upstream,
        svc.settings,
        request.path_qs(path),
        upstream_headers(request.headers, svc.upstream.api_key),
        parsed,
        policy.tiers.models,
        decision.action,
    )
    deadline = started + svc.settings.request_timeout
    extra = _classification_headers(classification)
    cooldown_s = policy.tiers.default_cooldown_seconds
    sticky = decision.action is not None and decision.action.sticky

    attempt = partial(open_stream, out) if messages and parsed.view.stream else partial(attempt_json, out)
    result = await svc.dispatcher.run(decision, attempt, deadline, cooldown_s)
    record_attempts(metrics, policy, decision, result.attempts, result.success is not None)
    streamed = messages and parsed.view.stream
    if result.success is None:
        outcome = "client_error" if result.final is not None and result.final.status < 500 else "upstream_error"
        record_request(metrics, decision, outcome, svc.clock() - started, bool(streamed))
        _log(decision, result, parsed, started, svc, outcome, extra={"tenant": who.name})
        _settle(svc, who, reservation, {}, 0.0)
        return failure_reply(decision, result, svc.clock(), cooling), False
    answered = result.target.model if result.target else None
    if sticky and answered:
        svc.remember_route(conversation, decision, answered, remembered)

    if streamed:
        opened = result.success

        def on_end(stats: StreamStats) -> None:
            outcome = {"complete": "ok", "client_gone": "client_closed"}.get(stats.end, "stream_error")
            record_request(metrics, decision, outcome, svc.clock() - started, True)
            if stats.first_content_at is not None:
                metrics.ttft.labels(decision.tier or "none").observe(stats.first_content_at - started)
            usage = stats.usage
            usd = record_usage(metrics, policy, answered, usage)
            _settle(svc, who, reservation, usage, usd)
            _log(decision, result, parsed, started, svc, outcome, stats, _usage_fields(who.name, request_id, usage, usd))
            metrics.in_flight.dec()

        request_id = opened.headers.get("request-id")
        headers = {**opened.headers, **router_headers(decision, result), **extra}
        return stream_reply(headers, Relay(opened, on_end)), True

    # The answer goes out first; its accounting runs once it is written (``router.server.asgi.send_reply``).
    reply = result.success
    headers = {**reply.headers, **router_headers(decision, result), **extra}
    account = partial(_account, svc, policy, decision, result, parsed, started, who, reservation, reply, messages)
    answer = json_reply(reply.status, headers, reply.body)
    answer.after = account
    return answer, False


def _account(
    svc: Services,
    policy: Policy,
    decision: Plan,
    result: Any,
    parsed: ParsedRequest,
    started: float,
    who: TenantView,
    reservation: Reservation | None,
    reply: Reply,
    messages: bool,
) -> None:
    """A non-streaming answer's usage, cost, budget, metrics and log line, after the client has it."""
    metrics = svc.metrics
    answered = result.target.model if result.target else None
    usage = usage_of_json(reply.body) if messages else {}
    usd = record_usage(metrics, policy, answered, usage)
    _settle(svc, who, reservation, usage, usd)
    record_request(metrics, decision, "ok", svc.clock() - started, False)
    fields = _usage_fields(who.name, reply.headers.get("request-id"), usage, usd)
    _log(decision, result, parsed, started, svc, "ok", extra=fields)


def _settle(svc: Services, who: TenantView, reservation: Reservation | None, usage: dict[str, int], usd: float) -> None:
    """Correct the tenant's token bucket and book the cost on its budget and its spend metric."""
    settle(svc.tenancy, reservation, usage, usd)
    if usd and who.tenant is not None:
        svc.metrics.tenant_spend.labels(who.name).inc(usd)


def _usage_fields(tenant: str, request_id: str | None, usage: dict[str, int], usd: float) -> dict[str, Any]:
    return {"request_id": request_id, "tenant": tenant, **usage, "usd": round(usd, 6)}


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
    outcome: str,
    stats: StreamStats | None = None,
    extra: dict[str, Any] | None = None,
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
        "outcome": outcome,
        "ms": round((svc.clock() - started) * 1000, 2),
        **(extra or {}),
    }
    if stats is not None:
        line["end"] = stats.end
        if stats.first_content_at is not None:
            line["ttft_ms"] = round((stats.first_content_at - started) * 1000, 2)
    log.info("%s", msgspec.json.encode(line).decode())
