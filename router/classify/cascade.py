"""The triage cascade: the local model first, Claude Haiku only when the local model is unsure.

Owns the decision of which stage answers and the per-instance counters of what that cost. The local
answer is always computed (it is microseconds and is the fallback); Haiku is asked when the local
confidence is below ``threshold``, Haiku is configured and the caller did not ask for local only. Any Haiku
failure — deadline, error, malformed answer, open breaker — returns the local answer marked ``fallback``,
so triage never fails or delays a request beyond the Haiku deadline.

Must not raise on Haiku failures (``HaikuClassifier`` reports them as outcomes) nor keep global state:
counters live on the ``Cascade`` built in the app's lifespan, to be exported by the metrics work.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from router.classify.haiku import OUTCOMES, HaikuClassifier, HaikuResult
from router.classify.schema import Classification


class LocalModel(Protocol):
    """What the cascade needs of the local classifier: a fast, synchronous answer with stage ``local``."""

    def classify(self, body: dict[str, Any]) -> Classification: ...


class CascadeResult(msgspec.Struct, frozen=True, kw_only=True):
    classification: Classification
    """The answer to route by; its ``stage`` says who decided."""
    local: Classification
    """The local model's answer, kept even when Haiku decided (for agreement metrics and the learning sink)."""
    haiku: HaikuResult | None
    """Set when Haiku was consulted (including ``breaker_open``, where no call went out)."""


class CascadeStats:
    """Running counters of one cascade. Mutable on purpose; read them, do not reset them mid-flight."""

    def __init__(self) -> None:
        self.calls = 0
        self.decided_by: dict[str, int] = {"local": 0, "haiku": 0, "fallback": 0}
        self.haiku_calls = 0
        """Times Haiku was consulted, including ones the open breaker turned away without a call."""
        self.haiku_outcomes: dict[str, int] = {outcome: 0 for outcome in OUTCOMES}
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.usd = 0.0
        """What the triage calls themselves cost, apart from the requests they routed."""

    @property
    def haiku_failures(self) -> dict[str, int]:
        return {outcome: n for outcome, n in self.haiku_outcomes.items() if outcome != "ok"}

    def record(self, result: CascadeResult) -> None:
        self.calls += 1
        self.decided_by[result.classification.stage] = self.decided_by.get(result.classification.stage, 0) + 1
        haiku = result.haiku
        if haiku is None:
            return
        self.haiku_calls += 1
        self.haiku_outcomes[haiku.outcome] = self.haiku_outcomes.get(haiku.outcome, 0) + 1
        self.input_tokens += haiku.input_tokens
        self.output_tokens += haiku.output_tokens
        self.cache_read_tokens += haiku.cache_read_tokens
        self.cache_write_tokens += haiku.cache_write_tokens
        self.usd += haiku.usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "decided_by": dict(self.decided_by),
            "haiku_calls": self.haiku_calls,
            "haiku_outcomes": dict(self.haiku_outcomes),
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "cache_read": self.cache_read_tokens,
                "cache_write": self.cache_write_tokens,
            },
            "usd": self.usd,
        }


class Cascade:
    def __init__(self, local: LocalModel, haiku: HaikuClassifier | None, threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be within [0, 1]")
        self.local = local
        self.haiku = haiku
        self.threshold = threshold
        self.stats = CascadeStats()

    async def classify(
        self, body: dict[str, Any], *, local_only: bool = False, threshold: float | None = None
    ) -> CascadeResult:
        """``threshold`` overrides the construction-time one (the policy's, which hot reload may change)."""
        local = self.local.classify(body)
        limit = self.threshold if threshold is None else threshold
        if local.confidence >= limit or self.haiku is None or local_only:
            result = CascadeResult(classification=local, local=local, haiku=None)
        else:
            haiku = await self.haiku.classify(body)
            if haiku.classification is not None:
                result = CascadeResult(classification=haiku.classification, local=local, haiku=haiku)
            else:
                result = CascadeResult(classification=local.with_stage("fallback"), local=local, haiku=haiku)
        self.stats.record(result)
        return result
