"""The fallback loop's own rules, driven with a scripted attempt function and an injected clock."""

import asyncio
from pathlib import Path

from router.gateway.cooldown import Cooldowns
from router.gateway.dispatch import Dispatcher, transport_failure
from router.gateway.outcome import http_failure
from router.gateway.plan import plan
from router.policy.loader import load_policy
from router.policy.rules import Facts

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies")
TABLE = POLICY.tiers
FACTS = Facts(model="opus", input_tokens=10, max_tokens=10, tools=False, images=False, documents=False, thinking=False, stream=False)


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def scripted(outcomes):
    """An attempt function answering from a per-model list of outcomes, recording the calls."""
    calls = []

    async def attempt(target, deadline):
        calls.append(target.model)
        return outcomes[target.model].pop(0)

    return attempt, calls


def run(dispatcher, attempt, deadline=1e9):
    decision = plan(FACTS, POLICY, dispatcher.cooldowns.active(dispatcher.clock()), dispatcher.clock())
    return asyncio.run(dispatcher.run(decision, attempt, deadline, TABLE.default_cooldown_seconds)), decision


def limited(model, retry_after=None, status=429):
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return http_failure(model, status, b"{}", headers)


def test_overload_without_retry_after_cools_down_for_the_default():
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)
    attempt, calls = scripted({"claude-opus-4-8": [limited("claude-opus-4-8", status=529)], "claude-sonnet-4-6": ["ok"]})
    result, _ = run(dispatcher, attempt)
    assert result.success == "ok" and calls == ["claude-opus-4-8", "claude-sonnet-4-6"]
    cooling = dispatcher.cooldowns.get("claude-opus-4-8")
    assert cooling.until == 100.0 + TABLE.default_cooldown_seconds and cooling.status == 529
    clock.now += TABLE.default_cooldown_seconds
    assert dispatcher.cooldowns.active(clock.now) == {}


def test_waits_out_the_shortest_retry_after_when_everything_failed():
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)
    attempt, calls = scripted(
        {
            "claude-opus-4-8": [limited("claude-opus-4-8", 4)],
            "claude-sonnet-4-6": [limited("claude-sonnet-4-6", 2), "ok"],
            "claude-haiku-4-5": [transport_failure("claude-haiku-4-5", "connect", "refused")],
        }
    )
    result, _ = run(dispatcher, attempt)
    assert clock.slept == [2.0]
    assert result.success == "ok" and result.target.model == "claude-sonnet-4-6"
    assert calls == ["claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5", "claude-sonnet-4-6"]
    # The retry started after the 429 that cooled Sonnet, so its success is news and clears the cooldown
    # (a success older than the mark would not: see test_a_stale_success_does_not_clear_a_newer_cooldown).
    assert dispatcher.cooldowns.get("claude-sonnet-4-6") is None, "a newer success clears the cooldown"


def test_a_stale_success_does_not_clear_a_newer_cooldown():
    # Request A's Opus attempt starts, then request B's Opus attempt gets a 429 (retry-after 30) and B falls
    # back to Sonnet; A's answer arrives afterwards. It says nothing about Opus since the 429: Opus stays cooling.
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)
    release = asyncio.Event()

    async def slow_ok(target, deadline):
        await release.wait()
        return "ok"

    b_attempt, _ = scripted({"claude-opus-4-8": [limited("claude-opus-4-8", 30)], "claude-sonnet-4-6": ["ok"]})

    async def scenario():
        decision = plan(FACTS, POLICY, {}, clock())
        a = asyncio.create_task(dispatcher.run(decision, slow_ok, 1e9, TABLE.default_cooldown_seconds))
        await asyncio.sleep(0)  # A's attempt is in flight
        clock.now += 1
        b = await dispatcher.run(decision, b_attempt, 1e9, TABLE.default_cooldown_seconds)
        clock.now += 1
        release.set()
        return await a, b

    a, b = asyncio.run(scenario())
    assert a.success == "ok" and a.target.model == "claude-opus-4-8"
    assert b.target.model == "claude-sonnet-4-6"
    cooling = dispatcher.cooldowns.get("claude-opus-4-8")
    assert cooling is not None and cooling.until == 101.0 + 30, "a success older than the 429 must not clear it"
    assert "claude-opus-4-8" in dispatcher.cooldowns.active(clock())


def test_cooldowns_are_capped_whatever_retry_after_says():
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)  # max_cooldown_seconds defaults to 300
    attempt, _ = scripted({"claude-opus-4-8": [limited("claude-opus-4-8", 86400)], "claude-sonnet-4-6": ["ok"]})
    run(dispatcher, attempt)
    assert dispatcher.cooldowns.get("claude-opus-4-8").until == 100.0 + 300.0


def test_the_policys_cooldown_cap_applies_below_the_default():
    """``max_cooldown_seconds`` in tiers.yaml caps a huge retry-after (issue 13, defect 13)."""
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)
    attempt, _ = scripted({"claude-opus-4-8": [limited("claude-opus-4-8", 86400)], "claude-sonnet-4-6": ["ok"]})
    decision = plan(FACTS, POLICY, {}, clock())
    asyncio.run(dispatcher.run(decision, attempt, 1e9, TABLE.default_cooldown_seconds, None, 45.0))
    assert dispatcher.cooldowns.get("claude-opus-4-8").until == 100.0 + 45.0


def test_a_json_attempts_time_limit_follows_the_models_slowest_rate():
    """``first_content_timeout + max_tokens / rate``: the model's ``min_output_tokens_per_s`` when it
    has one, else the table's ``slowest_output_tokens_per_s`` (issue 13, defect 9, as policy)."""
    import msgspec

    from router.gateway.dispatch import attempt_budget
    from router.gateway.outbound import Outbound
    from router.gateway.view import parse_request
    from router.settings import Settings

    parsed = parse_request(b'{"model": "opus", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}')
    slow = msgspec.structs.replace(TABLE.models["claude-opus-4-8"], min_output_tokens_per_s=10.0)
    models = {**TABLE.models, "claude-opus-4-8": slow}
    out = Outbound(None, Settings(first_content_timeout=5.0), "/v1/messages", {}, parsed, models, None, 40.0)  # type: ignore[arg-type]
    assert attempt_budget(out, "claude-opus-4-8", 1e9, 0.0) == 5.0 + 1000 / 10.0
    assert attempt_budget(out, "claude-sonnet-4-6", 1e9, 0.0) == 5.0 + 1000 / 40.0
    assert attempt_budget(out, "claude-sonnet-4-6", 10.0, 0.0) == 10.0, "never past the request's deadline"


def test_no_wait_past_the_deadline():
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)
    failures = {m: [limited(m, 2)] for m in ("claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5")}
    attempt, calls = scripted(failures)
    result, _ = run(dispatcher, attempt, deadline=101.0)
    assert clock.slept == [] and result.success is None and len(result.failures) == 3


def test_non_retryable_failure_stops_the_chain():
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)
    attempt, calls = scripted({"claude-opus-4-8": [http_failure("claude-opus-4-8", 400, b"{}", {})]})
    result, _ = run(dispatcher, attempt)
    assert calls == ["claude-opus-4-8"] and result.final.status == 400 and result.attempts == [("claude-opus-4-8", "400")]


def test_deadline_already_passed_tries_nothing():
    clock = Clock()
    dispatcher = Dispatcher(Cooldowns(), clock, clock.sleep)
    attempt, calls = scripted({})
    result, _ = run(dispatcher, attempt, deadline=50.0)
    assert calls == [] and result.success is None and result.failures == []
