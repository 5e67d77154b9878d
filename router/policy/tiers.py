"""The tier table: typed, frozen, validated view of ``policies/tiers.yaml``.

Owns the tier types and the lookups on them. Decoding and validation (with file:line:column) are the
policy loader's (``router.policy``); deciding where a request goes is ``plan``'s.
"""

from __future__ import annotations

import msgspec

from router.policy.model import ModelInfo


class Tier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tier. ``models[0]`` is the model the tier sends to; the others are ids that belong to it."""

    models: tuple[str, ...]
    fallback: tuple[str, ...] = ()

    @property
    def primary(self) -> str:
        return self.models[0]


class TierTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tiers are listed cheapest first: that order is what rule floors and caps compare."""

    tiers: dict[str, Tier]
    default_tier: str
    max_retry_wait_seconds: float = 5.0
    default_cooldown_seconds: float = 10.0
    models: dict[str, ModelInfo] = {}
    """Prices, limits and features per model id."""

    def rank(self, tier: str) -> int:
        return list(self.tiers).index(tier)

    def tier_of_model(self, model: str) -> str | None:
        """The tier a concrete model id belongs to, or None when the table does not know it."""
        for name, tier in self.tiers.items():
            if model in tier.models:
                return name
        return None


def deprecated_models(table: TierTable, deprecations: dict[str, str]) -> dict[str, str]:
    """Models the table lists that the API has announced it will retire: model id -> retirement date."""
    return {model: deprecations[model] for tier in table.tiers.values() for model in tier.models if model in deprecations}


def sdk_deprecations() -> dict[str, str]:
    """The anthropic SDK's own table of deprecated models (empty if this SDK version has none)."""
    try:
        from anthropic._data import DEPRECATED_MODELS
    except ImportError:  # a private module: tolerate its absence rather than refuse to start
        return {}
    return dict(DEPRECATED_MODELS)
