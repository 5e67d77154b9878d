"""Executing a plan: try targets in order, fall back on retryable failures, keep cooldowns, wait out a short
retry-after when nothing else is left.

The loop is shared by JSON requests and streams: each passes an ``attempt`` coroutine that makes one try
against one target and returns either its success payload or a ``Failure``. This module owns the policy of
moving between targets; it does not know HTTP framing (``attempt_json`` here and ``stream.open_stream``
do) and it does not decide the order (``plan`` did).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import msgspec

from router.gateway import usage
from router.gateway.cooldown import Cooldowns
from router.errors import TransportError
from router.gateway.headers import downstream_headers
from router.gateway.outcome import CAPACITY_STATUSES, Failure, http_failure
from router.gateway.plan import Plan, Target
from router.gateway.outbound import Outbound

T = TypeVar("T")
Attempt = Callable[[Target, float], Awaitable["T | Failure"]]


class JsonReply(msgspec.Struct, frozen=True):
    """A complete upstream response, relayed as it came, with the usage read from it."""

    status: int
    headers: dict[str, str]
    body: bytes
    usage: dict[str, int] = {}


class Dispatched(Generic[T]):
    """The result of running a plan: a success payload, or the failures; always the attempts made."""

    __slots__ = ("attempts", "failures", "final", "success", "target", "trying")

    def __init__(self) -> None:
        self.trying: Target | None = None
        """The target of the attempt in progress (for a request abandoned mid-attempt)."""
        self.attempts: list[tuple[str, str]] = []
        self.failures: list[Failure] = []
        self.success: T | None = None
        self.target: Target | None = None
        self.final: Failure | None = None
        """A non-retryable failure, relayed to the client as it is."""


class Dispatcher:
    """Runs plans. One per process; holds the cooldown table and the clock (injectable for tests)."""

    def __init__(
        self,
        cooldowns: Cooldowns,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cooldowns = cooldowns
        self.clock = clock
        self.sleep = sleep

    async def run(
        self,
        plan: Plan,
        attempt: Attempt[T],
        deadline: float,
        cooldown_s: float,
        result: Dispatched[T] | None = None,
        max_cooldown_s: float | None = None,
    ) -> Dispatched[T]:
        """Try ``plan``'s targets. ``cooldown_s``: how long a 429/529 without retry-after cools a model;
        ``max_cooldown_s``: the longest any cooldown lasts, whatever ``retry-after`` says (the policy's).
        ``result``: filled in as attempts are made, so a caller cancelled mid-way knows how far it got."""
        result = Dispatched() if result is None else result
        for target in plan.targets:
            if self.clock() >= deadline:
                break
            if await self._try(target, attempt, deadline, result, cooldown_s, max_cooldown_s):
                return result
        if result.final is None:
            await self._wait_and_retry(plan, attempt, deadline, result, cooldown_s, max_cooldown_s)
        return result

    async def _try(
        self,
        target: Target,
        attempt: Attempt[T],
        deadline: float,
        result: Dispatched[T],
        cooldown_s: float,
        max_cooldown_s: float | None = None,
    ) -> bool:
        """One attempt; True when the request is settled (success or a non-retryable failure)."""
        result.trying = target
        attempt_started = self.clock()
        outcome = await attempt(target, deadline)
        result.trying = None
        if isinstance(outcome, Failure):
            result.attempts.append((target.model, outcome.label))
            if not outcome.retryable:
                result.final = outcome
                result.target = target
                return True
            if outcome.status in CAPACITY_STATUSES:
                wait = outcome.retry_after if outcome.retry_after is not None else cooldown_s
                if max_cooldown_s is not None:
                    wait = min(wait, max_cooldown_s)
                await self.cooldowns.mark(target.model, wait, outcome.status, self.clock())
            result.failures.append(outcome)
            return False
        result.attempts.append((target.model, "200"))
        await self.cooldowns.clear(target.model, attempt_started)
        result.success = outcome
        result.target = target
        return True

    async def _wait_and_retry(
        self,
        plan: Plan,
        attempt: Attempt[T],
        deadline: float,
        result: Dispatched[T],
        cooldown_s: float,
        max_cooldown_s: float | None = None,
    ) -> None:
        """Every target failed: if one asked for a short enough retry-after, wait it out once and retry it."""
        waits = [
            f for f in result.failures if f.retry_after is not None and f.status in CAPACITY_STATUSES
        ]
        if not waits:
            return
        best = min(waits, key=lambda f: f.retry_after or 0.0)
        wait = best.retry_after or 0.0
        if wait > plan.max_retry_wait_seconds or self.clock() + wait >= deadline:
            return
        target = next(t for t in plan.targets if t.model == best.model)
        await self.sleep(wait)
        await self._try(target, attempt, deadline, result, cooldown_s, max_cooldown_s)



DEFAULT_MAX_TOKENS = 4096
"""The output size assumed when a request names no ``max_tokens`` (count_tokens; invalid Messages bodies)."""


def attempt_budget(out: Outbound, model: str, deadline: float, now: float) -> float:
    """How long one non-streaming attempt may wait for its response: its own limit, or what is left of the
    request's deadline when that is shorter.

    A JSON answer's first byte comes only once the whole answer is generated, so the limit grows with
    the answer: ``first_content_timeout + max_tokens / rate``, the rate being the slowest a healthy target
    is expected to generate at (the model's ``min_output_tokens_per_s`` in ``tiers.yaml``, else the table's
    ``slowest_output_tokens_per_s``, 20 by default). Past it the target
    is treated as stalled and the next one is tried (``timeout``), instead of one stalled tier eating the
    whole request deadline (issue 13, defect 9). The base is the streams' first-content deadline: the
    same "time until the upstream has shown it is working" setting for both kinds of request."""
    max_tokens = out.parsed.view.max_tokens or DEFAULT_MAX_TOKENS
    own = out.settings.first_content_timeout + max_tokens / out.output_rate(model)
    return max(min(own, deadline - now), 0.001)


async def attempt_json(
    out: Outbound,
    target: Target,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    read_usage: Callable[[bytes], dict[str, int] | None] = usage.read_json,
) -> JsonReply | Failure:
    """One non-streaming request to one target, within its own time limit (``attempt_budget``).
    ``read_usage``: the answer format's usage reader, which is also its well-formedness check (None: not
    a JSON object); the Messages API's by default."""
    body = out.body(target.model)
    budget = attempt_budget(out, target.model, deadline, clock())
    try:
        async with asyncio.timeout(budget):
            resp = await out.upstream.transport.request("POST", out.path_qs, out.headers, body)
            try:
                data = await resp.read()
            finally:
                resp.close()
    except TimeoutError:
        return transport_failure(target.model, "timeout", "upstream timed out")
    except TransportError as exc:
        return transport_failure(target.model, exc.label, exc.message)
    status = resp.status
    reply_headers = downstream_headers(resp.headers)
    if status < 400:
        answer_usage = read_usage(data)
        if answer_usage is None:
            # A 200 whose body is not JSON would make the client's SDK raise on parse: it is no answer, and
            # another target may give a real one.
            return transport_failure(target.model, "malformed", "upstream sent a malformed JSON answer")
        return JsonReply(status, reply_headers, data, answer_usage)
    return http_failure(target.model, status, data, reply_headers)


_TRANSPORT_STATUS = {"timeout": 504, "stall": 504, "invalid": 400}
# ``invalid``: the transport refused to write the request (CR, LF or NUL in a header or the path); every
# target would refuse it alike, so it is the client's error, not a reason to fall back.
_NOT_RETRYABLE = frozenset({"invalid"})


def transport_failure(model: str, label: str, message: str) -> Failure:
    """A failure with no upstream response to relay: connection errors, timeouts, cuts, bad frames."""
    return Failure(
        model=model,
        label=label,
        status=_TRANSPORT_STATUS.get(label, 502),
        retryable=label not in _NOT_RETRYABLE,
        message=message,
    )
