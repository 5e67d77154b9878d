"""The classification both classifiers produce: the one output schema of triage.

Owns the label sets and the ``Classification`` record. Pure data: no model, no I/O.
"""

from __future__ import annotations

import msgspec

CATEGORIES: tuple[str, ...] = (
    "code",
    "math",
    "reasoning",
    "open_qa",
    "closed_qa",
    "extraction",
    "classification",
    "summarization",
    "rewrite",
    "creative_writing",
    "brainstorming",
    "chitchat",
)
COMPLEXITIES: tuple[str, ...] = ("low", "medium", "high")
STAGES: tuple[str, ...] = ("local", "haiku", "haiku-sim", "fallback")
"""Which stage decided: the local model alone, the Haiku call, the Haiku call answered by the built-in
simulator (demo mode: synthetic labels), or the local answer after Haiku failed."""


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    complexity: str
    difficulty: float
    """Continuous difficulty in [0, 1]; ``complexity`` is this score cut at the model's thresholds."""
    confidence: float
    """How sure the deciding stage is, in [0, 1]."""
    stage: str
    scores: dict[str, float]
    """Per-category probabilities (sum to 1)."""

    def with_stage(self, stage: str) -> Classification:
        return msgspec.structs.replace(self, stage=stage)


def complexity_for(difficulty: float, medium_at: float, high_at: float) -> str:
    """Cut a difficulty score into a complexity label."""
    if difficulty >= high_at:
        return "high"
    if difficulty >= medium_at:
        return "medium"
    return "low"
