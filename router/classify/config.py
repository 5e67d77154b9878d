"""Classifier settings from ``policies/classifier.yaml``: typed, frozen, validated against the tier table.

Owns the types. Decoding, validation against the tier table (with file:line:column) and hot reload are
the policy loader's (``router.policy.loader``).
"""

from __future__ import annotations

import msgspec


class HaikuPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    model: str = "claude-haiku-4-5"
    deadline_seconds: float = 1.5
    max_tokens: int = 200


class ClassifierPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str = "triage-local-v2"
    confidence_threshold: float = 0.5
    complexity_tiers: dict[str, str] = msgspec.field(
        default_factory=lambda: {"low": "haiku", "medium": "sonnet", "high": "opus"}
    )
    haiku: HaikuPolicy = msgspec.field(default_factory=HaikuPolicy)
    learning_sink: str | None = None

