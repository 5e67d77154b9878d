"""Triage as the router runs it: the policy, the local model, the cascade and the opt-in learning sink.

Owns construction (in the app's lifespan or a CLI command) and the one call handlers make,
``Triage.classify``. The Haiku client points at the router's own upstream, with the router's key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


from router.classify.cascade import Cascade, CascadeResult
from router.classify.config import ClassifierPolicy
from router.classify.local import load
from router.settings import Settings

log = logging.getLogger("router.triage")


class LearningSink:
    """Appends requests Haiku labelled to a JSONL file for ``router train --extra``. Off unless configured:
    it stores prompt text."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def record(self, body: dict[str, Any], result: CascadeResult) -> None:
        if result.classification.stage != "haiku":
            return
        line = {
            "body": {key: body[key] for key in ("system", "messages", "tools") if key in body},
            "category": result.classification.category,
            "complexity": result.classification.complexity,
            "difficulty": result.classification.difficulty,
            "local": {"category": result.local.category, "complexity": result.local.complexity},
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


class Triage:
    def __init__(self, policy: ClassifierPolicy, local: Any, cascade: Cascade, sink: LearningSink | None):
        self.policy = policy
        self.local = local
        self.cascade = cascade
        self.sink = sink

    async def classify(
        self, body: dict[str, Any], *, local_only: bool = False, threshold: float | None = None
    ) -> CascadeResult:
        result = await self.cascade.classify(body, local_only=local_only, threshold=threshold)
        if self.sink is not None:
            try:
                self.sink.record(body, result)
            except OSError as exc:  # a full disk must not fail the request
                log.warning("learning sink write failed: %s", exc.strerror)
        return result


@asynccontextmanager
async def build_triage(
    settings: Settings,
    policy: ClassifierPolicy,
    models_dir: Path,
    upstream_url: str | None = None,
    *,
    simulated: bool = False,
) -> AsyncIterator[Triage]:
    """Triage for the process, from the classifier settings at start-up (the model and the Haiku call; the
    threshold is read from the current policy per request). ``upstream_url`` overrides where the Haiku
    call goes (the embedded simulator); ``simulated`` says it goes there, so its answers are marked
    ``haiku-sim`` (they are synthetic) and never reach the learning sink."""
    from router.classify.breaker import CircuitBreaker
    from router.classify.haiku import HaikuClassifier, HaikuSettings, make_client

    local = load(models_dir, policy.model)
    client = None
    haiku = None
    if policy.haiku.enabled:
        key = settings.upstream_key.reveal() if settings.upstream_key is not None else "no-key"
        client = make_client(upstream_url or settings.upstream_url, key, policy.haiku.deadline_seconds)
        # Haiku's 1-10 difficulty is tiered at the local model's cut-offs: one scale, one set of cuts.
        haiku_settings = HaikuSettings(
            model=policy.haiku.model,
            deadline_s=policy.haiku.deadline_seconds,
            max_tokens=policy.haiku.max_tokens,
            medium_at=local.medium_at,
            high_at=local.high_at,
            stage="haiku-sim" if simulated else "haiku",
        )
        breaker = CircuitBreaker(failure_threshold=haiku_settings.failure_threshold, cooloff_s=haiku_settings.cooloff_s)
        haiku = HaikuClassifier(client, haiku_settings, breaker)
    sink = LearningSink(Path(policy.learning_sink)) if policy.learning_sink else None
    if sink is not None:
        log.warning("learning sink on: requests Haiku labels are written, prompt text included, to %s", sink.path)
    try:
        yield Triage(policy, local, Cascade(local, haiku, policy.confidence_threshold), sink)
    finally:
        if client is not None:
            await client.close()

