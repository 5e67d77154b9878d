"""The tier table: typed, frozen, validated view of ``policies/tiers.yaml``.

Owns the tier types and the lookups on them; what a model id resolves to (aliases, snapshots, families,
lifecycle) is the catalogue's (``router.policy.catalogue``), built here once per load. Decoding and
validation (with file:line:column) are the policy loader's (``router.policy``); deciding where a request
goes is ``plan``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Annotated

import msgspec

from router.policy.catalogue import ModelCatalogue
from router.policy.model import Family, ModelInfo


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
    max_cooldown_seconds: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    """The longest a model is skipped after a 429/529, however large its ``retry-after``."""
    slowest_output_tokens_per_s: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    """The slowest rate (tokens/s) a healthy model is expected to generate at, for models that give no
    ``min_output_tokens_per_s``: a JSON attempt that has not answered within ``first_content_timeout +
    max_tokens / rate`` is stalled and the next target is tried."""
    models: dict[str, ModelInfo] = {}
    """The model catalogue: prices, limits, features, family, aliases and lifecycle per model id. After
    decoding it is a ``ModelCatalogue``, whose ``get`` also resolves aliases, snapshots and families."""
    families: dict[str, Family] = {}
    """Model lines (haiku, sonnet, opus...): the tier, id pattern and prices of ids not listed yet."""

    def __post_init__(self) -> None:
        # Built once per load so a request's lookups are dict hits; the struct stays frozen for its users.
        msgspec.structs.force_setattr(self, "models", ModelCatalogue(self.models, self.tiers, self.families))

    @property
    def catalogue(self) -> ModelCatalogue:
        return self.models  # type: ignore[return-value]

    def rank(self, tier: str) -> int:
        return list(self.tiers).index(tier)

    def tier_of_model(self, model: str) -> str | None:
        """The tier a model id belongs to -- listed by a tier, an entry of a family with a tier, an alias or
        snapshot of one, or an unlisted id of a family that routes them -- or None (unknown or retired)."""
        return self.catalogue.tier_of(model)


def deprecated_models(table: TierTable, deprecations: dict[str, str]) -> dict[str, str]:
    """Models the table's tiers list that are headed for retirement: model id -> retirement date
    (``YYYY-MM-DD`` when known). The catalogue's own lifecycle first, then the SDK's table."""
    found: dict[str, str] = {}
    for tier in table.tiers.values():
        for model in tier.models:
            info = dict.get(table.models, model)
            if info is not None and info.lifecycle != "active":
                found[model] = info.retires_at.isoformat() if info.retires_at else "a date not yet announced"
            elif model in deprecations:
                found[model] = deprecations[model]
    return found


def retirement_date(text: str) -> date | None:
    """``2026-11-30`` or the SDK's ``November 30th, 2026`` as a date; None when it is neither."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    cleaned = text.replace("st,", ",").replace("nd,", ",").replace("rd,", ",").replace("th,", ",")
    try:
        return datetime.strptime(cleaned, "%B %d, %Y").date()
    except ValueError:
        return None


def deprecation_notices(table: TierTable, deprecations: dict[str, str], today: date) -> dict[str, str]:
    """One warning per deprecated model the tiers list, worded for ``today``: a retirement date that has
    passed is spoken of in the past tense (requests to it fail), a coming one in the future tense."""
    notices: dict[str, str] = {}
    primaries = {tier.primary for tier in table.tiers.values()}
    for model, when in deprecated_models(table, deprecations).items():
        day = retirement_date(when)
        shown = day.isoformat() if day else when
        if day is not None and day <= today:
            text = f"tier table lists {model}, which Anthropic retired on {shown}: requests to it fail -- remove it"
        elif day is not None:
            text = f"tier table lists {model}, which Anthropic retires on {shown}"
        else:
            text = f"tier table lists {model}, which Anthropic has deprecated (retirement: {shown})"
        if model in primaries:
            text += " -- it is a tier's primary model: move the tier to a newer one"
        notices[model] = text
    return notices


PUBLISHED_RETIREMENTS: Mapping[str, str] = MappingProxyType(
    {
        "claude-mythos-preview": "2026-06-30",
        "claude-opus-4-5": "2027-01-22",
        "claude-opus-4-5-20251101": "2027-01-22",
        "claude-sonnet-4-5": "2026-11-30",
        "claude-sonnet-4-5-20250929": "2026-11-30",
    }
)
"""Retirement dates Anthropic has announced (its model-deprecations page, as the anthropic SDK's
``DEPRECATED_MODELS`` carried them up to 2.14). Kept here because the SDK drops a model from its table once
it is retired (2.15 dropped ``claude-sonnet-4-5``) -- exactly when a tier table still listing it most needs
the warning."""


def deprecation_dates() -> dict[str, str]:
    """Model id -> announced retirement date: the dates above, then the installed anthropic SDK's own table
    (newer announcements; empty if this SDK version has none)."""
    try:
        from anthropic._data import DEPRECATED_MODELS
    except ImportError:  # a private module: tolerate its absence rather than refuse to start
        return dict(PUBLISHED_RETIREMENTS)
    return {**PUBLISHED_RETIREMENTS, **DEPRECATED_MODELS}
