"""The tier table: typed, frozen, validated view of ``policies/tiers.yaml``.

Owns decoding and validating the tier file. It does not decide anything about a request (that is
``plan``) and it does not watch files (loading happens once, in the app's lifespan).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from router.errors import ConfigError
from router.policy.model import ModelInfo

TIERS_FILE = "tiers.yaml"
RESERVED_NAMES = frozenset({"auto"})


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


def validate(table: TierTable, source: str) -> TierTable:
    """Cross-field checks msgspec cannot express. Raises ConfigError naming ``source``."""
    problems: list[str] = []
    if not table.tiers:
        problems.append("'tiers' is empty: define at least one tier")
    seen_models: dict[str, str] = {}
    for name, tier in table.tiers.items():
        if name in RESERVED_NAMES:
            problems.append(f"tier name {name!r} is reserved (it is a request alias)")
        if not tier.models:
            problems.append(f"tier {name!r} lists no models")
        for model in tier.models:
            if model in seen_models:
                problems.append(f"model {model!r} is listed by tiers {seen_models[model]!r} and {name!r}")
            seen_models[model] = name
        for other in tier.fallback:
            if other not in table.tiers:
                problems.append(f"tier {name!r} falls back to unknown tier {other!r}")
            elif other == name:
                problems.append(f"tier {name!r} lists itself as a fallback")
        if len(set(tier.fallback)) != len(tier.fallback):
            problems.append(f"tier {name!r} repeats a tier in its fallback list")
    if table.default_tier not in table.tiers:
        problems.append(f"default_tier {table.default_tier!r} is not a defined tier")
    if table.max_retry_wait_seconds < 0:
        problems.append("max_retry_wait_seconds must be >= 0")
    if table.default_cooldown_seconds < 0:
        problems.append("default_cooldown_seconds must be >= 0")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return table


def parse_tiers(text: str, source: str) -> TierTable:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    try:
        table = msgspec.convert(data, TierTable)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return validate(table, source)


def load_tiers(policies_dir: Path) -> TierTable:
    path = Path(policies_dir) / TIERS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tier table: {exc.strerror}") from None
    return parse_tiers(text, str(path))


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
