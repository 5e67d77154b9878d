"""The forwarding pipeline for ``/v1/messages``, ``count_tokens`` and ``/v1/chat/completions``: admit,
classify, plan, dispatch, relay, then account, log and measure. The API format is the request's dialect
(``router.gateway.dialect``): parsing, usage, stream frames and error envelopes; the steps are the same.

Owns the order of those steps for one request. Each step's logic lives in its own module; this one only
sequences them and makes sure every request ends in exactly one log line and one ``requests`` count,
whether it is refused, fails upstream, streams to the end or is abandoned by its client (the front door
cancels ``forward`` when the client disconnects: ``client_closed``, and nothing more is attempted).

Tenant accounting: a Messages request is admitted (rate limit, budget) before anything is spent; the
Haiku triage call made for it is charged to the tenant with the answer (``triage_usd`` in the log line);
``count_tokens`` takes one request from the tenant's request-rate limit and nothing from its tokens or
budget (it is free upstream).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import msgspec
from router.tenancy.admission import admit, settle, tenant_of
from router.tenancy.state import Reservation
from router.classify.schema import Classification
from router.gateway.dialect import MESSAGES, Dialect
from router.gateway.dispatch import Dispatched, JsonReply, attempt_json
from router.errors import BudgetExceeded, ClientFacingError
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
from router.gateway.view import ParsedRequest

log = logging.getLogger("router.access")

SHUTDOWN = "router-shutdown"
"""The cancel message the front door uses when the server, not the client, ends a request (the drain
deadline passed): the request is then recorded ``shutdown`` rather than ``client_closed``."""


class Inbound:
    """The client's request as the pipeline reads it: headers (as sent), body bytes, raw query string."""

    __slots__ = ("body", "headers", "query")

    def __init__(self, headers: list[tuple[str, str]], body: bytes, query: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self.query = query

    def path_qs(self, path: str) -> str:
        return path + "?" + self.query.decode("latin-1") if self.query else path


# How a stream's end is counted: a clean end, the client leaving, the drain deadline, else an error.
_STREAM_OUTCOMES = {"complete": "ok", "client_gone": "client_closed", "shutdown": "shutdown"}


class _Progress:
    """How far one request got, for the accounting of a request whose client left mid-way."""

    __slots__ = ("admitted", "decision", "parsed", "reservation", "result", "streamed", "triage_usd", "who")

    def __init__(self) -> None:
        self.who: TenantView | None = None
        self.parsed: ParsedRequest | None = None
        self.admitted = False
        self.reservation: Reservation | None = None
        self.triage_usd = 0.0
        self.decision: Plan | None = None
        self.result: Dispatched[Any] = Dispatched()
        self.streamed = False


async def forward(
    request: Inbound, svc: Services, path: str, *, messages: bool, dialect: Dialect = MESSAGES
) -> Reply | StreamReply:
    """Route and relay. ``messages`` is False for count_tokens: no classification, budget or streaming.
    ``dialect``: the API format of the request (``router.gateway.dialect``); every step but parsing, usage,
    stream frames and error envelopes is the same for all of them."""
    started = svc.clock()
    metrics = svc.metrics
    metrics.in_flight.inc()
    streaming = False
    progress = _Progress()
    try:
        response, streaming = await _forward(request, svc, path, messages, started, progress, dialect)
        return response
    except ClientFacingError as exc:
        record_request(metrics, None, "rejected", svc.clock() - started, False)
        _log_rejected(svc, progress, started, exc)
        raise
    except asyncio.CancelledError as exc:
        _client_left(svc, progress, started, "shutdown" if exc.args[:1] == (SHUTDOWN,) else "client_closed")
        raise
    finally:
        if not streaming:  # a committed stream leaves the in-flight count when it ends
            metrics.in_flight.dec()


def _client_left(svc: Services, progress: _Progress, started: float, outcome: str) -> None:
    """The client disconnected before the answer was ready, or the drain deadline passed (``forward`` was
    cancelled): the attempt in flight was abandoned (its upstream connection closed), and the request is
    recorded as ``outcome``: one count, one log line, the triage already spent charged to the tenant."""
    decision, result = progress.decision, progress.result
    record_request(svc.metrics, decision, outcome, svc.clock() - started, progress.streamed)
    if decision is not None:
        record_attempts(svc.metrics, svc.store.current, decision, result.attempts, False)
    who = progress.who
    if who is not None and progress.admitted:
        _settle(svc, who, progress.reservation, {}, 0.0, progress.triage_usd)
    if progress.parsed is not None:
        trying = result.trying
        label = "client_gone" if outcome == "client_closed" else outcome
        attempts = [*result.attempts, *([(trying.model, label)] if trying is not None else [])]
        fields = {"tenant": who.name if who else None, "triage_usd": round(progress.triage_usd, 6)}
        _log(decision, attempts, None, progress.parsed, started, svc, outcome, extra=fields)


async def _forward(
    request: Inbound,
    svc: Services,
    path: str,
    messages: bool,
    started: float,
    progress: _Progress,
    dialect: Dialect = MESSAGES,
) -> tuple[Reply | StreamReply, bool]:
    policy = svc.store.current  # one policy version for the whole request, whatever reloads meanwhile
    metrics = svc.metrics
    who = progress.who = tenant_of(request.headers, svc.tenancy, policy)
    parsed = progress.parsed = dialect.parse(request.body)
    unlisted = policy.tiers.catalogue.unlisted_family(parsed.view.model)
    if unlisted is not None:
        metrics.unlisted_models.labels(unlisted).inc()
    estimated = parsed.estimated_tokens if messages else 0
    reservation = progress.reservation = await _admit(svc, who, estimated, policy, parsed, messages)
    downgrade = reservation.downgrade if reservation is not None else None
    progress.admitted = True
    classification = None
    triage_usd = 0.0
    if messages and parsed.view.model == AUTO:
        triage_started = svc.clock()
        triage = await svc.triage.classify(parsed.messages_body, threshold=policy.classifier.confidence_threshold)
        record_triage(metrics, policy, triage, svc.clock() - triage_started, policy.classifier.haiku.model)
        classification = triage.classification
        triage_usd = progress.triage_usd = triage.haiku.usd if triage.haiku is not None else 0.0
    facts = request_facts(parsed, request.headers, who.name, classification)
    now = svc.clock()
    conversation = conversation_key(parsed.messages_body, who.name) if messages else None
    cooling, remembered = await svc.routing_state(conversation, now)
    try:
        decision = plan(facts, policy, cooling, now, who.tenant, downgrade, remembered)
    except ClientFacingError:
        _settle(svc, who, reservation, {}, 0.0, triage_usd)
        raise
    progress.decision = decision
    sent_headers = upstream_headers(request.headers, svc.upstream.api_key)
    if dialect.bearer_upstream and svc.upstream.api_key:
        sent_headers["authorization"] = "Bearer " + svc.upstream.api_key
    out = Outbound(
        svc.upstream,
        svc.settings,
        request.path_qs(path),
        sent_headers,
        parsed,
        policy.tiers.models,
        decision.action,
        policy.tiers.slowest_output_tokens_per_s,
    )
    deadline = started + svc.settings.request_timeout
    extra = _classification_headers(classification)
    logged = _classification_fields(classification)
    cooldown_s = policy.tiers.default_cooldown_seconds
    sticky = decision.action is not None and decision.action.sticky

    streamed = progress.streamed = messages and parsed.view.stream
    if streamed:
        attempt: Any = partial(open_stream, out, fmt=dialect.stream_format(parsed))
    else:
        attempt = partial(attempt_json, out, read_usage=dialect.read_usage)
    result = await svc.dispatcher.run(
        decision, attempt, deadline, cooldown_s, progress.result, policy.tiers.max_cooldown_seconds
    )
    record_attempts(metrics, policy, decision, result.attempts, result.success is not None)
    if result.success is None:
        outcome = "client_error" if result.final is not None and result.final.status < 500 else "upstream_error"
        record_request(metrics, decision, outcome, svc.clock() - started, bool(streamed))
        fields = {"tenant": who.name, "triage_usd": round(triage_usd, 6), **logged}
        _log(decision, result.attempts, result.target, parsed, started, svc, outcome, extra=fields)
        _settle(svc, who, reservation, {}, 0.0, triage_usd)
        return failure_reply(decision, result, svc.clock(), cooling, dialect.error_reply), False
    answered = result.target.model if result.target else None
    if sticky and answered:
        svc.remember_route(conversation, decision, answered, remembered)

    if streamed:
        opened = result.success

        def on_end(stats: StreamStats) -> None:
            outcome = _STREAM_OUTCOMES.get(stats.end, "stream_error")
            record_request(metrics, decision, outcome, svc.clock() - started, True)
            if stats.first_content_at is not None:
                metrics.ttft.labels(decision.tier or "none").observe(stats.first_content_at - started)
            usage = stats.usage
            usd = record_usage(metrics, policy, answered, usage)
            _settle(svc, who, reservation, usage, usd, triage_usd)
            fields = {**_usage_fields(who.name, request_id, usage, usd, triage_usd), **logged}
            _log(decision, result.attempts, result.target, parsed, started, svc, outcome, stats, fields)
            metrics.in_flight.dec()

        request_id = opened.headers.get("request-id")
        headers = {**opened.headers, **router_headers(decision, result), **extra}
        return stream_reply(headers, Relay(opened, on_end), dialect.error_frame), True

    # The answer goes out first; its accounting runs once it is written (``router.server.asgi.send_reply``).
    reply = result.success
    headers = {**reply.headers, **router_headers(decision, result), **extra}
    account = partial(
        _account, svc, policy, decision, result, parsed, started, who, reservation, reply, messages, triage_usd, logged
    )
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
    reply: JsonReply,
    messages: bool,
    triage_usd: float,
    logged: dict[str, Any],
) -> None:
    """A non-streaming answer's usage, cost, budget, metrics and log line, after the client has it."""
    metrics = svc.metrics
    answered = result.target.model if result.target else None
    usage = reply.usage if messages else {}
    usd = record_usage(metrics, policy, answered, usage)
    _settle(svc, who, reservation, usage, usd, triage_usd)
    record_request(metrics, decision, "ok", svc.clock() - started, False)
    fields = {**_usage_fields(who.name, reply.headers.get("request-id"), usage, usd, triage_usd), **logged}
    _log(decision, result.attempts, result.target, parsed, started, svc, "ok", extra=fields)


async def _admit(
    svc: Services, who: TenantView, estimated: int, policy: Policy, parsed: ParsedRequest, messages: bool
) -> Reservation | None:
    """The tenant's admission: for a Messages request the whole check, reserving its estimated cost; for
    count_tokens only the request-rate part (no tokens, nothing reserved, and a spent budget does not stop
    a free call)."""
    if messages:
        return await admit(svc.tenancy, who, estimated, policy, parsed.view.max_tokens)
    try:
        reservation = await admit(svc.tenancy, who, 0, policy, 0)
    except BudgetExceeded:
        return None
    settle(svc.tenancy, reservation, {}, 0.0)  # the request was counted; nothing stays reserved
    return None


def _settle(
    svc: Services,
    who: TenantView,
    reservation: Reservation | None,
    usage: dict[str, int],
    usd: float,
    triage_usd: float = 0.0,
) -> None:
    """Replace what admission reserved with the real tokens and cost (serving plus the triage call made for
    this request) on the tenant's limits and budget, and count the spend."""
    total = usd + triage_usd
    settle(svc.tenancy, reservation, usage, total)
    if total and who.tenant is not None:
        svc.metrics.tenant_spend.labels(who.name).inc(total)


def _usage_fields(
    tenant: str, request_id: str | None, usage: dict[str, int], usd: float, triage_usd: float
) -> dict[str, Any]:
    return {"request_id": request_id, "tenant": tenant, **usage, "usd": round(usd, 6), "triage_usd": round(triage_usd, 6)}


def _classification_fields(classification: Classification | None) -> dict[str, Any]:
    """The classification for the access line: labels and scores only, never text from the prompt."""
    if classification is None:
        return {}
    return {
        "category": classification.category,
        "complexity": classification.complexity,
        "difficulty": round(classification.difficulty, 3),
        "confidence": round(classification.confidence, 3),
        "stage": classification.stage,
    }


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


def _requested_label(parsed: ParsedRequest, svc: Services) -> str:
    """The requested model as logged: only a router alias or a model the tier table knows -- a free client
    string is not something to copy into logs."""
    requested = parsed.view.model
    tiers = svc.store.current.tiers
    known = requested == AUTO or requested in tiers.tiers or tiers.tier_of_model(requested) is not None
    return requested if known else "other"


def _log_rejected(svc: Services, progress: _Progress, started: float, exc: ClientFacingError) -> None:
    """The one access line of a request the router itself refused (unreadable body, unknown key, rate limit
    or budget, a plan with no allowed target): its status and error type, the tenant when known, and the
    decision's rule when it got that far. Never the message (it may quote the request) or a key."""
    if not log.isEnabledFor(logging.INFO):
        return
    who, parsed, decision = progress.who, progress.parsed, progress.decision
    # The same fields as every other access line (one schema for log pipelines), null where unknown.
    line: dict[str, Any] = {
        "requested": _requested_label(parsed, svc) if parsed is not None else None,
        "tier": decision.tier if decision is not None else None,
        "model": None,
        "rule": decision.rule if decision is not None else None,
        "attempts": [],
        "stream": parsed.view.stream if parsed is not None else None,
        "outcome": "rejected",
        "ms": round((svc.clock() - started) * 1000, 2),
        "status": exc.status,
        "error": exc.error_type,
        "tenant": who.name if who is not None else None,
    }
    if parsed is not None and parsed.api is not None:
        line["api"] = parsed.api
    log.info("%s", msgspec.json.encode(line).decode())


def _log(
    decision: Plan | None,
    attempts: list[tuple[str, str]],
    target: Any,
    parsed: ParsedRequest,
    started: float,
    svc: Services,
    outcome: str,
    stats: StreamStats | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """One line per request, at its end: the decision and its outcome. Never the prompt, never a key.

    The requested model is logged only when it is a router alias or a model the tier table knows: a free
    client string is not something to copy into logs (and attempts' model ids are cut to 64 characters)."""
    if not log.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {
        "requested": _requested_label(parsed, svc),
        "tier": target.tier if target else (decision.tier if decision else None),
        "model": target.model[:64] if target else None,
        "rule": decision.rule if decision else None,
        "attempts": [f"{m[:64]}:{o}" for m, o in attempts],
        "stream": parsed.view.stream,
        "outcome": outcome,
        "ms": round((svc.clock() - started) * 1000, 2),
        **(extra or {}),
    }
    if parsed.api is not None:
        line["api"] = parsed.api
    if stats is not None:
        line["end"] = stats.end
        if stats.first_content_at is not None:
            line["ttft_ms"] = round((stats.first_content_at - started) * 1000, 2)
    log.info("%s", msgspec.json.encode(line).decode())
