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


class Cascade:
    def __init__(self, local: LocalModel, haiku: HaikuClassifier | None, threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be within [0, 1]")
        self.local = local
        self.haiku = haiku
        self.threshold = threshold

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
        return result
