"""Pass-through: every ``/v1/*`` path the router does not serve itself goes to the upstream as it is.

Owns that forwarding. A request here is authenticated like a Messages request (the tenant from the key;
401 for an unknown one), takes one request from the tenant's rate limit (no tokens, and a used-up budget
does not stop these free calls -- except a new Message Batch, see ``batches``), has its credentials swapped
for the router's upstream key and goes upstream with its method, path and query (as the client encoded
them), body, and headers (``anthropic-version``, ``anthropic-beta``, content type and every other
end-to-end header; hop-by-hop ones, cookies and the router's own are dropped: ``headers.upstream_headers``).
The body limit is the Messages one (32 MB; 413 in the envelope before anything is sent).

The answer comes back with its status, the allowlisted headers (``headers.downstream_headers`` plus
``content-length`` and ``content-disposition``) and its body streamed through chunk by chunk -- a file
download or a batch's results are never held whole. The exceptions are batch objects, whose
``results_url`` is rewritten to point at the router (small JSON, read whole), and forwarded
``/v1/models/{id}`` lookups (the same). Timeouts: the connect timeout, then ``request_timeout`` for the
response head (and a whole buffered body), then ``stream_idle_timeout`` between two pieces of a streamed
body. No response head: 502 ``api_error`` (connection failed) or 504 ``timeout_error`` in Anthropic's
envelope. A body that breaks after the head was sent is never ended cleanly: the connection is closed
short, so the client's HTTP library reports an incomplete body.

Every request ends in one access line (``router.access``: route family, method, status, outcome, tenant,
bytes, the upstream request id; never the path, a key or a body) and one count in
``router_passthrough_requests_total`` by route family (``batches``, ``files``, ``models``, ``other``).

Not served here (they stay the router's): ``/v1/messages`` and ``count_tokens`` (the pipeline), the
models list and router ids under ``/v1/models/`` (``routes``), ``/v1/router/*`` and ``/v1/chat/*`` (the
OpenAI-compatible surface).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from router.errors import BudgetExceeded, ClientFacingError, MethodNotAllowed, NotFound, TransportError, UpstreamUnavailable
from router.gateway.batches import BatchPlan, ResultsTally, owner_view, point_results_here, prepare_batch, price_results
from router.gateway.headers import downstream_headers, upstream_headers
from router.gateway.replies import Reply, json_reply
from router.gateway.services import Services
from router.tenancy.admission import admit, settle, tenant_of
from router.tenancy.tenants import TenantView
from router.upstream.transport import Response

log = logging.getLogger("router.access")

FORWARDED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
BATCHES = "/v1/messages/batches"
_RELAYED_TOO = ("content-length", "content-disposition")


def served_locally(path: str) -> bool:
    """Paths under ``/v1/`` the router answers itself (or another of its handlers does)."""
    return path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/models") or path.startswith(
        ("/v1/models/", "/v1/router/", "/v1/chat/")
    )


def is_passthrough(path: str) -> bool:
    return path.startswith("/v1/") and not served_locally(path)


def route_family(path: str) -> str:
    """The fixed label a path is counted under: never the path itself (ids would be unbounded labels)."""
    if path == BATCHES or path.startswith(BATCHES + "/"):
        return "batches"
    if path == "/v1/files" or path.startswith("/v1/files/"):
        return "files"
    if path.startswith("/v1/models/"):
        return "models"
    return "other"


def batch_id_of(path: str) -> str | None:
    """``msgbatch_...`` in ``/v1/messages/batches/{id}[/results|/cancel]``."""
    if not path.startswith(BATCHES + "/"):
        return None
    batch_id = path[len(BATCHES) + 1 :].split("/", 1)[0]
    return batch_id or None


class PassRequest:
    """One client request to forward: method, decoded path (for decisions), the target as the client
    encoded it (path and query, forwarded), headers as sent, body, and the router's base URL as the client
    reached it (for ``results_url``; empty when unknown)."""

    __slots__ = ("base", "body", "headers", "method", "path", "target")

    def __init__(self, method: str, path: str, target: str, headers: list[tuple[str, str]], body: bytes, base: str = "") -> None:
        self.method = method
        self.path = path
        self.target = target
        self.headers = headers
        self.body = body
        self.base = base


class _End:
    """How a relayed body ended, and what the access line says about the request."""

    __slots__ = ("bytes", "end", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.end = "client_closed"
        self.bytes = 0
        self.fields = fields


class Relayed:
    """A forwarded answer whose body streams: write ``status`` and ``headers``, then every chunk; end the
    body only when ``complete`` (else close the connection short); then await ``finish()`` (accounting)."""

    __slots__ = ("_finish", "_state", "chunks", "headers", "status")

    def __init__(
        self, status: int, headers: dict[str, str], chunks: AsyncIterator[bytes], state: _End,
        finish: Callable[[], Awaitable[None]],
    ) -> None:
        self.status = status
        self.headers = headers
        self.chunks = chunks
        self._state = state
        self._finish = finish

    @property
    def complete(self) -> bool:
        return self._state.end == "complete"

    def mark_end(self, end: str) -> None:
        """The server, not the upstream, ended the body (the drain deadline)."""
        if self._state.end != "complete":
            self._state.end = end

    async def finish(self) -> None:
        await self._finish()


def _method_label(method: str) -> str:
    return method if method in FORWARDED_METHODS else "other"


async def pass_through(request: PassRequest, svc: Services) -> Reply | Relayed:
    """Forward ``request``; raises ``ClientFacingError`` for what the router refuses itself."""
    started = svc.clock()
    family = route_family(request.path)
    fields: dict[str, Any] = {"passthrough": family, "method": _method_label(request.method)}
    try:
        return await _forward(request, svc, family, started, fields)
    except ClientFacingError as exc:
        outcome = "unreachable" if isinstance(exc, UpstreamUnavailable) else "rejected"
        _done(svc, family, request.method, outcome, exc.status, started, fields)
        raise
    except asyncio.CancelledError:
        _done(svc, family, request.method, "client_closed", None, started, fields)
        raise


def refused_at_the_door(svc: Services, method: str, path: str, status: int) -> None:
    """Count and log a request refused before it could be read (its body over the limit)."""
    family = route_family(path)
    fields: dict[str, Any] = {"passthrough": family, "method": _method_label(method)}
    _done(svc, family, method, "rejected", status, svc.clock(), fields)


async def _forward(request: PassRequest, svc: Services, family: str, started: float, fields: dict[str, Any]) -> Reply | Relayed:
    if request.method not in FORWARDED_METHODS:
        raise MethodNotAllowed("method not allowed on this path", headers={"allow": ", ".join(sorted(FORWARDED_METHODS))})
    if any(segment in (".", "..") for segment in request.path.split("/")):
        raise NotFound("not found: a path with '.' or '..' segments is not forwarded")
    policy = svc.store.current
    who = tenant_of(request.headers, svc.tenancy, policy)
    fields["tenant"] = who.name
    body = request.body
    batch_id = batch_id_of(request.path)
    creating = request.method == "POST" and request.path == BATCHES
    batch_plan: BatchPlan | None = None
    if creating:
        body, batch_plan = await prepare_batch(body, request.headers, who, svc)
        fields.update(requests=batch_plan.requests, routed=batch_plan.routed, estimated_usd=batch_plan.estimated_usd)
    else:
        await _admit_request(svc, who)
    if batch_id is not None:
        fields["batch_id"] = batch_id[:128]
        owner = await svc.batches.owner(batch_id)
        if owner is not None and who.tenant is not None and owner != who.name:
            # Another tenant's batch: as if it did not exist (the upstream account is shared; its ids are not).
            raise NotFound(f"message batch {batch_id[:128]} not found")
    headers = upstream_headers(request.headers, svc.upstream.api_key)
    response = await _open(svc, request.method, request.target, headers, body)
    status = response.status
    out = downstream_headers(response.headers)
    fields["status"] = status
    fields["request_id"] = out.get("request-id")
    outcome = "ok" if status < 400 else "client_error" if status < 500 else "upstream_error"
    if family == "models" or (family == "batches" and status < 300 and not request.path.endswith("/results")):
        data = await _read_whole(svc, response)
        if family == "batches":
            data = point_results_here(data, request.base)
            if creating:
                await _remember_owner(svc, data, who, fields)
                if batch_plan is not None:
                    for tier, count in batch_plan.tiers.items():
                        svc.metrics.batch_requests.labels(tier).inc(count)
        fields["bytes"] = len(data)
        reply = json_reply(status, out, data)
        reply.after = lambda: _done(svc, family, request.method, outcome, status, started, fields)
        return reply
    for name in _RELAYED_TOO:
        value = response.get(name)
        if value is not None:
            out[name] = value
    tally = ResultsTally() if batch_id is not None and request.path.endswith("/results") and status == 200 else None
    state = _End(fields)

    async def finish() -> None:
        fields["bytes"] = state.bytes
        if state.end != "complete":
            fields["end"] = state.end
            ended = "client_closed" if state.end in ("client_closed", "shutdown") else "cut"
            _done(svc, family, request.method, ended, status, started, fields)
            return
        if tally is not None and batch_id is not None:
            tally.close()
            await _account_results(svc, batch_id, tally, who, fields)
        _done(svc, family, request.method, outcome, status, started, fields)

    chunks = _relay(response, svc.settings.stream_idle_timeout, tally, state)
    return Relayed(status, out, chunks, state, finish)


async def _admit_request(svc: Services, who: TenantView) -> None:
    """One request from the tenant's request-rate limit; no tokens, nothing reserved, and a used-up budget
    does not refuse a call that costs nothing upstream."""
    policy = svc.store.current
    try:
        reservation = await admit(svc.tenancy, who, 0, policy, 0)
    except BudgetExceeded:
        return
    settle(svc.tenancy, reservation, {}, 0.0)


async def _open(svc: Services, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
    """The upstream response head, or the 502/504 envelope."""
    try:
        async with asyncio.timeout(svc.settings.request_timeout):
            return await svc.upstream.transport.request(method, target, headers, body)
    except TimeoutError:
        raise UpstreamUnavailable("the upstream did not answer within the request timeout", status=504) from None
    except TransportError as exc:
        raise UpstreamUnavailable(f"the upstream could not be reached ({exc.label}): {exc.message}", status=502) from None


async def _read_whole(svc: Services, response: Response) -> bytes:
    try:
        async with asyncio.timeout(svc.settings.request_timeout):
            return await response.read()
    except TimeoutError:
        raise UpstreamUnavailable("the upstream's answer did not arrive within the request timeout", status=504) from None
    except TransportError as exc:
        raise UpstreamUnavailable(f"the upstream's answer broke off ({exc.label})", status=502) from None
    finally:
        response.close()


async def _relay(response: Response, idle: float, tally: ResultsTally | None, state: _End) -> AsyncIterator[bytes]:
    """The body as it arrives; ``state.end`` says how it ended (``complete`` only at the upstream's end)."""
    try:
        while True:
            data = await response.chunk(idle)
            if not data:
                state.end = "complete"
                return
            state.bytes += len(data)
            if tally is not None:
                tally.feed(data)
            yield data
    except TimeoutError:
        state.end = "stall"
    except TransportError as exc:
        state.end = exc.label
    finally:
        response.close()


class _Created(msgspec.Struct):
    id: str = ""
    type: str = ""


async def _remember_owner(svc: Services, data: bytes, who: TenantView, fields: dict[str, Any]) -> None:
    try:
        created = msgspec.json.decode(data, type=_Created)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if created.id and created.type == "message_batch":
        fields["batch_id"] = created.id[:128]
        await svc.batches.remember(created.id, who.name)


async def _account_results(svc: Services, batch_id: str, tally: ResultsTally, who: TenantView, fields: dict[str, Any]) -> None:
    """Book a batch's results once: the first complete read of its results file prices and books it."""
    fields.update(succeeded=tally.succeeded, not_succeeded=tally.other)
    if tally.unreadable:
        fields["unreadable_lines"] = tally.unreadable
    policy = svc.store.current
    owner = owner_view(policy, await svc.batches.owner(batch_id), who)
    if not await svc.batches.claim(batch_id):
        fields["booked"] = "before"
        return
    if owner is who:
        await svc.batches.remember(batch_id, who.name)
    usd = price_results(svc, policy, tally, owner)
    fields.update(booked="now", usd=round(usd, 6), charged_to=owner.name)


def _done(
    svc: Services, family: str, method: str, outcome: str, status: int | None, started: float, fields: dict[str, Any]
) -> None:
    svc.metrics.passthrough.labels(family, _method_label(method), outcome).inc()
    if not log.isEnabledFor(logging.INFO):
        return
    line = {**fields, "outcome": outcome, "ms": round((svc.clock() - started) * 1000, 2)}
    if status is not None:
        line["status"] = status
    log.info("%s", msgspec.json.encode(line).decode())
