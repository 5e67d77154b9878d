"""The triage cascade: when Haiku is asked, and what comes back when it answers or fails.

Haiku calls go over HTTP with the real anthropic SDK client to the simulated upstream; the local model is
a stub with a fixed answer, so these tests do not depend on the trained model.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from router.classify.cascade import Cascade, CascadeResult
from router.classify.haiku import HaikuClassifier, HaikuSettings, make_client
from router.classify.schema import CATEGORIES, Classification
from tests.classify.test_haiku_classifier import messages_seen

THRESHOLD = 0.6
BODY = {"model": "auto", "max_tokens": 256, "messages": [{"role": "user", "content": "Prove the four colour theorem."}]}


class FixedLocal:
    """A local model that always says ``chitchat``/``low`` with the given confidence."""

    def __init__(self, confidence: float) -> None:
        scores = {name: (confidence if name == "chitchat" else (1 - confidence) / 11) for name in CATEGORIES}
        self.answer = Classification(
            category="chitchat", complexity="low", difficulty=0.1, confidence=confidence, stage="local", scores=scores
        )
        self.calls = 0

    def classify(self, body: dict[str, Any]) -> Classification:
        self.calls += 1
        return self.answer


def run_cascade(
    sim: Any, confidence: float, *, settings: HaikuSettings | None = None, haiku: bool = True, times: int = 1, **kwargs: Any
) -> tuple[list[CascadeResult], Cascade]:
    settings = settings or HaikuSettings()

    async def main() -> tuple[list[CascadeResult], Cascade]:
        client = make_client(sim.url, "sk-triage-test", settings.deadline_s)
        try:
            classifier = HaikuClassifier(client, settings) if haiku else None
            cascade = Cascade(FixedLocal(confidence), classifier, THRESHOLD)
            return [await cascade.classify(BODY, **kwargs) for _ in range(times)], cascade
        finally:
            await client.close()

    return asyncio.run(main())


def haiku_requests(sim: Any) -> int:
    return len(messages_seen(sim))


def test_confident_local_answer_needs_no_haiku(sim):
    [result], cascade = run_cascade(sim, confidence=0.9)
    assert result.classification.stage == "local" and result.classification == result.local
    assert result.haiku is None and haiku_requests(sim) == 0


def test_unsure_local_answer_asks_haiku(sim):
    [result], cascade = run_cascade(sim, confidence=0.3)
    assert haiku_requests(sim) == 1
    assert result.haiku is not None and result.haiku.outcome == "ok"
    assert result.classification.stage == "haiku" and result.classification == result.haiku.classification
    assert result.local.stage == "local" and result.local.confidence == 0.3
    assert result.haiku.input_tokens > 0 and result.haiku.usd > 0  # what record_triage meters


def test_local_only_never_calls_haiku(sim):
    [result], _ = run_cascade(sim, confidence=0.3, local_only=True)
    assert result.classification.stage == "local" and result.haiku is None and haiku_requests(sim) == 0


def test_no_haiku_configured_means_local_answers(sim):
    [result], _ = run_cascade(sim, confidence=0.1, haiku=False)
    assert result.classification.stage == "local" and haiku_requests(sim) == 0


def test_haiku_deadline_falls_back_to_the_local_answer(sim):
    sim.faults({"kind": "stall", "stall_s": 5})
    started = time.monotonic()
    [result], cascade = run_cascade(sim, confidence=0.3, settings=HaikuSettings(deadline_s=0.3))
    assert time.monotonic() - started < 1.5
    assert result.haiku is not None and result.haiku.outcome == "timeout"
    assert result.classification == result.local.with_stage("fallback")


@pytest.mark.parametrize("fault", [{"kind": "overloaded"}, {"kind": "server_error"}, {"kind": "connect_refused"}])
def test_haiku_errors_fall_back_to_the_local_answer(sim, fault):
    sim.faults(fault)
    [result], cascade = run_cascade(sim, confidence=0.3)
    assert result.haiku is not None and result.haiku.outcome == "error"
    assert result.classification.stage == "fallback" and result.classification.category == "chitchat"


def test_open_breaker_falls_back_without_calling(sim):
    sim.faults({"kind": "overloaded"})
    results, cascade = run_cascade(sim, confidence=0.3, settings=HaikuSettings(failure_threshold=2), times=4)
    assert [r.haiku.outcome for r in results if r.haiku] == ["error", "error", "breaker_open", "breaker_open"]
    assert all(r.classification.stage == "fallback" for r in results)
    assert haiku_requests(sim) == 2


def test_threshold_must_be_a_probability():
    with pytest.raises(ValueError):
        Cascade(FixedLocal(0.5), None, 1.5)
