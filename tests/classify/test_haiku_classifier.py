"""The Haiku triage stage: the condensed view, the breaker, strict validation, and real calls to the sim.

Calls go over HTTP with the real anthropic SDK client to the simulated upstream, which answers a forced
tool call with an input synthesized from the tool's schema; faults are injected through its control API.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest

from router.classify.breaker import CircuitBreaker
from router.classify.condense import condense
from router.classify.haiku import (
    INPUT_SCHEMA,
    SYSTEM_PROMPT,
    TOOL_NAME,
    HaikuClassifier,
    HaikuSettings,
    MalformedAnswer,
    make_client,
    spend,
    validate_tool_input,
)
from router.classify.schema import CATEGORIES, COMPLEXITIES

KEY = "sk-triage-test-51c0"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def long_conversation(turns: int = 30, chars: int = 2000) -> dict[str, Any]:
    messages = [{"role": "user", "content": "FIRST-TURN please design a sharded key-value store. " + "x" * chars}]
    for i in range(1, turns):
        role = "assistant" if i % 2 else "user"
        messages.append({"role": role, "content": [{"type": "text", "text": f"turn-{i} " + "y" * chars}]})
    messages.append({"role": "user", "content": "LAST-TURN yes, do it"})
    return {"model": "auto", "max_tokens": 4096, "system": "You are a careful engineer. " * 200, "messages": messages}


def run_classifier(sim: Any, bodies: list[dict[str, Any]], settings: HaikuSettings | None = None, **kwargs: Any) -> list[Any]:
    """Classify ``bodies`` in order with one classifier (and one client) on a fresh event loop."""
    settings = settings or HaikuSettings()

    async def main() -> list[Any]:
        client = make_client(sim.url, KEY, settings.deadline_s)
        try:
            classifier = HaikuClassifier(client, settings, **kwargs)
            return [await classifier.classify(body) for body in bodies]
        finally:
            await client.close()

    return asyncio.run(main())


def messages_seen(sim: Any) -> list[dict[str, Any]]:
    """Every /v1/messages request the sim logged. Read from its control endpoint directly: the shared
    ``SimHandle.requests()`` may hide triage calls from router tests, and here they are the subject."""
    with urllib.request.urlopen(sim.url + "/_sim/requests", timeout=10) as resp:
        logged = json.loads(resp.read())["requests"]
    return [r for r in logged if r["path"] == "/v1/messages"]


# --- condense -------------------------------------------------------------------------------------


def test_condense_keeps_beginning_and_end_within_budget():
    body = long_conversation()
    text = condense(body, 6000)
    assert len(text) <= 6000
    assert "FIRST-TURN" in text and "LAST-TURN yes, do it" in text
    assert "[… 26 earlier turns," in text and "chars omitted …]" in text
    assert "turns=31" in text and "max_tokens=4096" in text
    assert "turn-29" in text and "turn-27" in text and "turn-5 " not in text
    assert condense(body, 6000) == text, "deterministic"


@pytest.mark.parametrize("budget", [1, 40, 300, 1000, 6000])
def test_condense_never_exceeds_budget(budget):
    assert len(condense(long_conversation(turns=8, chars=9000), budget)) <= budget


def test_condense_sizes_flags_and_blocks():
    body = {
        "max_tokens": 1000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": [{"name": "read_file", "input_schema": {"type": "object", "description": "SCHEMA-TEXT"}}, {"name": "bash"}],
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "what is in this?"}, {"type": "image", "source": {"data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "SECRET-REASONING"}, {"type": "tool_use", "name": "read_file", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "content": [{"type": "text", "text": "file body"}, {"type": "document", "title": "spec.pdf"}]}]},
        ],
    }
    text = condense(body)
    header = text.splitlines()[0]
    assert "turns=3" in header and "max_tokens=1000" in header and "thinking=yes" in header
    assert "images=yes" in header and "documents=yes" in header
    assert "[tools] 2: read_file, bash" in text and "SCHEMA-TEXT" not in text
    assert "[tool_use read_file]" in text and "file body" in text and "[document spec.pdf]" in text
    assert "SECRET-REASONING" not in text and "AAAA" not in text
    assert "thinking=no" in condense({"messages": [{"role": "user", "content": "hi"}]})


def test_condense_clips_one_huge_turn_head_and_tail():
    body = {"messages": [{"role": "user", "content": "HEAD " + "z" * 50_000 + " TAIL-QUESTION?"}]}
    text = condense(body, 2000)
    assert len(text) <= 2000 and "HEAD" in text and "TAIL-QUESTION?" in text and "chars omitted …]" in text
    assert "chars=50020 approx_tokens=12505" in text


def test_condense_tolerates_odd_shapes():
    for body in ({}, {"messages": "nope"}, {"messages": [None, {"role": "user"}, {"role": "user", "content": [1, {"type": "x"}]}]}):
        assert len(condense(body, 500)) <= 500


# --- breaker --------------------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooloff():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooloff_s=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow(), "one probe"
    assert not breaker.allow(), "only one probe at a time"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow(), "a failed probe re-opens for a fresh cool-off"
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_breaker_probe_lease_lapses_when_the_probe_never_reports():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooloff_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow() and not breaker.allow()
    clock.now += 10
    assert breaker.allow()


# --- validation -----------------------------------------------------------------------------------

GOOD = {"category": "math", "difficulty": 8, "confidence": 0.9}


def test_validate_accepts_a_good_answer():
    c = validate_tool_input(GOOD)
    # The 1-10 rubric score is stored on the local model's [0, 1] scale and tiered at its cut-offs.
    assert (c.category, c.difficulty, c.confidence, c.stage) == ("math", round(7 / 9, 6), 0.9, "haiku")
    assert c.complexity == "high"
    assert c.scores["math"] == 0.9 and abs(sum(c.scores.values()) - 1.0) < 1e-9
    assert validate_tool_input({**GOOD, "difficulty": 1, "confidence": 0}).difficulty == 0.0
    assert validate_tool_input({**GOOD, "difficulty": 10}).difficulty == 1.0
    assert validate_tool_input({**GOOD, "difficulty": 4}, medium_at=0.3, high_at=0.6).complexity == "medium"
    assert validate_tool_input({**GOOD, "difficulty": 3.0}, medium_at=0.3, high_at=0.6).complexity == "low"


def test_tool_schema_carries_the_anchored_scale():
    assert INPUT_SCHEMA["properties"]["difficulty"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert "complexity" not in INPUT_SCHEMA["properties"]
    for anchor in ("1 trivial", "5 moderate", "10 at the frontier", "harness"):
        assert anchor in SYSTEM_PROMPT


@pytest.mark.parametrize(
    "bad",
    [
        None,
        ["math"],
        {k: v for k, v in GOOD.items() if k != "confidence"},
        {**GOOD, "extra": 1},
        {**GOOD, "complexity": "high"},
        {**GOOD, "category": "poetry"},
        {**GOOD, "category": 3},
        {**GOOD, "difficulty": 0},
        {**GOOD, "difficulty": 11},
        {**GOOD, "difficulty": 4.5},
        {**GOOD, "difficulty": 0.8},
        {**GOOD, "difficulty": "5"},
        {**GOOD, "difficulty": True},
        {**GOOD, "difficulty": float("nan")},
        {**GOOD, "confidence": float("nan")},
        {**GOOD, "confidence": None},
    ],
)
def test_validate_rejects_bad_answers(bad):
    with pytest.raises(MalformedAnswer):
        validate_tool_input(bad)


# --- calls to the simulated upstream --------------------------------------------------------------


def test_haiku_answers_with_a_valid_classification_and_a_cacheable_forced_tool_request(sim):
    [result] = run_classifier(sim, [long_conversation()])
    assert result.outcome == "ok", result
    c = result.classification
    assert c.stage == "haiku" and c.category in CATEGORIES and c.complexity in COMPLEXITIES
    assert 0 <= c.difficulty <= 1 and 0 <= c.confidence <= 1
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.usd == pytest.approx((result.input_tokens * 1.0 + result.output_tokens * 5.0) / 1e6)

    [request] = messages_seen(sim)
    body = request["body"]
    assert body["model"] == "claude-haiku-4-5" and body["max_tokens"] == 200 and "stream" not in body
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    [tool] = body["tools"]
    assert tool["cache_control"] == {"type": "ephemeral"} and tool["input_schema"] == INPUT_SCHEMA
    [message] = body["messages"]
    assert message["role"] == "user" and len(message["content"]) <= 6000
    assert "LAST-TURN" in message["content"] and "earlier turns" in message["content"]
    assert request["headers"]["authorization"] == f"Bearer {KEY}"  # SDK 2.x sends the key as Bearer


def test_cost_counts_cache_reads_and_writes():
    class Usage:
        input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens = 100, 20, 1000, 400

    usd = spend(Usage(), HaikuSettings())["usd"]
    assert usd == pytest.approx((100 * 1.0 + 20 * 5.0 + 1000 * 0.1 + 400 * 1.25) / 1e6)


def test_deadline_turns_a_stall_into_timeout(sim):
    sim.faults({"kind": "stall", "stall_s": 5})
    started = time.monotonic()
    [result] = run_classifier(sim, [long_conversation(turns=2)], HaikuSettings(deadline_s=0.3))
    assert result.outcome == "timeout" and result.classification is None
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("fault", [{"kind": "overloaded"}, {"kind": "server_error"}, {"kind": "rate_limit", "retry_after": 1}, {"kind": "connect_refused"}])
def test_upstream_errors_are_outcome_error_with_no_sdk_retry(sim, fault):
    sim.faults(fault)
    [result] = run_classifier(sim, [long_conversation(turns=2)])
    assert result.outcome == "error" and result.classification is None
    assert len(messages_seen(sim)) == 1, "max_retries=0: the SDK must not retry behind the breaker's back"


@pytest.mark.parametrize(
    "field, schema",
    [
        ("category", {"type": "string"}),  # the sim fills free text, not a category
        ("difficulty", {"type": "number", "minimum": 11, "maximum": 12}),  # out of range
    ],
)
def test_answer_outside_the_contract_is_malformed(sim, field, schema):
    # The tool schema sent is loosened on purpose; validation still checks the real contract.
    loose = {**INPUT_SCHEMA, "properties": {**INPUT_SCHEMA["properties"], field: schema}}
    [result] = run_classifier(sim, [long_conversation(turns=2)], input_schema=loose)
    assert result.outcome == "malformed" and result.classification is None
    assert result.output_tokens > 0 and result.usd > 0, "a malformed answer was still paid for"


def test_breaker_stops_calls_after_failures_and_probes_after_cooloff(sim):
    sim.faults({"kind": "overloaded", "count": 3})
    clock = FakeClock()
    settings = HaikuSettings(failure_threshold=3, cooloff_s=30)
    breaker = CircuitBreaker(settings.failure_threshold, settings.cooloff_s, clock)
    body = long_conversation(turns=2)

    async def main() -> list[str]:
        client = make_client(sim.url, KEY, settings.deadline_s)
        try:
            classifier = HaikuClassifier(client, settings, breaker, clock)
            outcomes = [(await classifier.classify(body)).outcome for _ in range(5)]
            assert len(messages_seen(sim)) == 3, "an open breaker sends nothing"
            clock.now += 30
            outcomes.append((await classifier.classify(body)).outcome)  # the probe; the fault is used up
            outcomes.append((await classifier.classify(body)).outcome)
            return outcomes
        finally:
            await client.close()

    outcomes = asyncio.run(main())
    assert outcomes == ["error"] * 3 + ["breaker_open"] * 2 + ["ok", "ok"]
    assert len(messages_seen(sim)) == 5 and breaker.state == "closed"
