"""Message Batches through the router: planning the requests of a new batch, pointing ``results_url`` back at
the router, and pricing a batch's results as they stream through.

Owns three decisions:

* **Create** (``POST /v1/messages/batches``): every request whose ``params.model`` is a string is planned
  by the same policy as a Messages request (rules, tenant tiers, the budget's downgrade; ``auto`` classified
  by the local model only -- never a Haiku call per item) and its model set to the plan's first target:
  batches have no fallback. Cooldowns and sticky routes are ignored (a batch runs later, whatever is
  rate-limited now). For ``auto`` and tier names that is the routing; a concrete id the policy keeps first
  (the shipped policy keeps every id it knows, and forwards unknown ids as named) passes unchanged, and one
  an ops rule or the tenant's allowed tiers move elsewhere goes where a Messages request naming it would
  go. A request the policy refuses (a retired model, no allowed tier) refuses the batch with the request's
  index and ``custom_id`` in the message; anything else the upstream validates.
* **Budget**: the batch is admitted once, as one request against the tenant's rate limit, with its
  estimated cost (each request's size and ``max_tokens`` at the dearest model, at batch prices) checked
  against the budget -- a used-up budget refuses (or, with ``downgrade``, caps the batch's tiers) -- and
  released at once: the real cost arrives with the results, hours later, so nothing stays reserved.
* **Results** (``GET .../results``, JSONL): each ``succeeded`` line's ``message.model`` and ``usage`` are
  summed while the bytes pass through unchanged; when the file has been read to its end the batch is
  claimed (``BatchBook.claim``: once per batch) and, the first time, priced at ``BATCH_PRICE_FACTOR`` of
  the tier table's prices, counted in the tokens and cost metrics (purpose ``batch``) and booked to the
  tenant that created the batch (or, when the router never saw it created, to the tenant fetching it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from router.errors import ClientFacingError, InvalidRequest
from router.gateway.facts import request_facts
from router.gateway.plan import AUTO, plan
from router.gateway.record import USAGE_TYPES, model_label, record_triage
from router.gateway.services import Services
from router.gateway.view import ParsedRequest, RequestView, check_model, decode_body
from router.observability.metrics import NONE
from router.policy.loader import Policy
from router.policy.pricing import BATCH_PRICE_FACTOR, batch_cost_usd
from router.tenancy.admission import settle
from router.tenancy.batches import book_spend
from router.tenancy.tenants import TenantView

YIELD_EVERY = 64
"""Requests planned between two yields to the event loop: a 10,000-request batch must not stall every
other request for the seconds its classification takes."""


class BatchPlan(msgspec.Struct, frozen=True):
    """What the router did to a new batch, for the access line."""

    requests: int
    routed: int
    """Requests whose model the router chose (``auto``, a tier name, or a concrete id the policy moved)."""
    estimated_usd: float
    downgrade: str | None
    tiers: dict[str, int]
    """Requests per tier they were sent to (``none``: a model outside the tier table), counted once the
    upstream accepted the batch."""


async def prepare_batch(raw: bytes, headers: list[tuple[str, str]], who: TenantView, svc: Services) -> tuple[bytes, BatchPlan]:
    """The body to send upstream for a new batch (the client's own bytes when nothing changes) and what was
    done. Raises the tenant's 429 (rate limit, budget), or a 400/403/404 naming the request the policy refuses."""
    policy = svc.store.current
    body = decode_body(raw)
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list):
        raise InvalidRequest("requests: expected an array of {custom_id, params}")
    items: list[tuple[int, dict[str, Any], Any]] = []  # (index, request, parsed params)
    estimated_usd = 0.0
    for index, item in enumerate(requests):
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            continue  # nothing to route: the upstream says what is wrong with it
        try:
            parsed = _parsed(params)
        except ClientFacingError as exc:
            raise _item_error(exc, index, item) from None
        items.append((index, item, parsed))
        if who.tenant is not None and who.tenant.budget is not None:
            estimated_usd += svc.tenancy.estimate_usd(policy, parsed.estimated_tokens, parsed.view.max_tokens)
    estimated_usd *= BATCH_PRICE_FACTOR
    downgrade = await _admit(svc, who, estimated_usd)
    routed = 0
    changed = False
    tiers: dict[str, int] = {}
    for count, (index, item, parsed) in enumerate(items, 1):
        if count % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        model = parsed.view.model
        classification = None
        if model == AUTO:
            started = svc.clock()
            result = await svc.triage.classify(parsed.body, local_only=True)
            record_triage(svc.metrics, policy, result, svc.clock() - started, policy.classifier.haiku.model)
            classification = result.classification
        facts = request_facts(parsed, headers, who.name, classification)
        try:
            decision = plan(facts, policy, {}, 0.0, who.tenant, downgrade)
        except ClientFacingError as exc:
            raise _item_error(exc, index, item) from None
        first = decision.targets[0]
        tier = first.tier or NONE
        tiers[tier] = tiers.get(tier, 0) + 1
        if first.model != model:
            item["params"] = {**parsed.body, "model": first.model}
            routed += 1
            changed = True
    out = msgspec.json.encode(body) if changed else raw
    return out, BatchPlan(len(requests), routed, round(estimated_usd, 6), downgrade, tiers)


def _parsed(params: dict[str, Any]) -> ParsedRequest:
    """One request's params as ``view.parse_request`` reads a Messages body, without decoding them again
    (the size estimate needs the encoded bytes; the batch's body was decoded once)."""
    if "messages" not in params:
        raise InvalidRequest("messages: Field required")
    try:
        view = msgspec.convert(params, RequestView)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"cannot read the request: {exc}") from None
    check_model(view.model)
    return ParsedRequest(view=view, body=params, raw=msgspec.json.encode(params))


async def _admit(svc: Services, who: TenantView, estimated_usd: float) -> str | None:
    """One request from the tenant's rate limit and the budget check, released at once; the tier to cap the
    batch at when the budget says downgrade."""
    reservation = await svc.tenancy.admit(who, 0, estimated_usd)
    settle(svc.tenancy, reservation, {}, 0.0)
    return reservation.downgrade if reservation is not None else None


def _item_error(exc: ClientFacingError, index: int, item: Any) -> ClientFacingError:
    custom_id = item.get("custom_id") if isinstance(item, dict) else None
    name = f" (custom_id {custom_id!r})" if isinstance(custom_id, str) and len(custom_id) <= 64 else ""
    return type(exc)(f"requests[{index}]{name}: {exc.message}", status=exc.status, headers=exc.headers)


# --- results_url ---------------------------------------------------------------------------------------


def point_results_here(body: bytes, router_base: str) -> bytes:
    """A batch object (or a list of them) with ``results_url`` on the router's own address: the SDKs fetch
    the results from that URL as given, and the upstream's own would bypass the router (its key, its
    accounting). ``router_base`` is how the client reached the router (empty: a path-only URL)."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body
    objects = decoded.get("data") if isinstance(decoded, dict) and isinstance(decoded.get("data"), list) else [decoded]
    changed = False
    for entry in objects:
        url = entry.get("results_url") if isinstance(entry, dict) else None
        if isinstance(url, str) and url:
            parts = urlsplit(url)
            entry["results_url"] = router_base + parts.path + (f"?{parts.query}" if parts.query else "")
            changed = True
    return msgspec.json.encode(decoded) if changed else body


# --- results accounting --------------------------------------------------------------------------------


class _Usage(msgspec.Struct):
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0
    cache_creation_input_tokens: int | None = 0


class _Message(msgspec.Struct):
    model: str = ""
    usage: _Usage | None = None


class _Result(msgspec.Struct):
    type: str = ""
    message: _Message | None = None


class _Line(msgspec.Struct):
    result: _Result | None = None


_LINE = msgspec.json.Decoder(_Line)


class ResultsTally:
    """Usage per model over a results file read in arbitrary chunks (lines may straddle them). Only the
    fields it needs are decoded; the bytes themselves are relayed untouched by the caller."""

    def __init__(self) -> None:
        self.usage: dict[str, dict[str, int]] = {}
        self.succeeded = 0
        self.other = 0
        self.unreadable = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk if self._tail else chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._tail = data
            return
        self._tail = data[end + 1 :]
        self._lines(data[:end].split(b"\n"))

    def close(self) -> None:
        """The file ended: its last line may have no newline."""
        if self._tail.strip():
            self._lines([self._tail])
        self._tail = b""

    def _lines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            if not line.strip():
                continue
            try:
                result = _LINE.decode(line).result
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.unreadable += 1
                continue
            if result is None or result.type != "succeeded" or result.message is None or result.message.usage is None:
                self.other += 1
                continue
            self.succeeded += 1
            usage, into = result.message.usage, self.usage.setdefault(result.message.model, {})
            for key in USAGE_TYPES:
                value = getattr(usage, key) or 0
                if value > 0:
                    into[key] = into.get(key, 0) + value


def price_results(svc: Services, policy: Policy, tally: ResultsTally, owner: TenantView) -> float:
    """Count a batch's tokens and cost in the metrics (purpose ``batch``) and book its cost to ``owner``;
    returns the USD. Models without prices in the tier table cost 0 (counted in tokens, as for Messages)."""
    metrics = svc.metrics
    total = 0.0
    for model, usage in tally.usage.items():
        label = model_label(policy, model)
        for key, kind in USAGE_TYPES.items():
            if usage.get(key):
                metrics.tokens.labels(label, kind).inc(usage[key])
        info = policy.tiers.models.get(model)
        if info is None:
            continue
        usd = batch_cost_usd(
            info,
            usage.get("input_tokens", 0),
            usage.get("output_tokens", 0),
            usage.get("cache_read_input_tokens", 0),
            usage.get("cache_creation_input_tokens", 0),
        )
        metrics.cost.labels(label, "batch").inc(usd)
        total += usd
    if owner.tenant is not None and total:
        book_spend(svc.tenancy, owner.name, total)
        metrics.tenant_spend.labels(owner.name).inc(total)
    return total


def owner_view(policy: Policy, name: str | None, fetcher: TenantView) -> TenantView:
    """The tenant a batch's cost goes to: its creator when known (no tenant to book to when the creator is no
    longer configured: metrics only), else the tenant fetching the results."""
    if name is None or name == fetcher.name:
        return fetcher
    return TenantView(name, policy.tenants.tenants.get(name))
