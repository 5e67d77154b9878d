"""The policy's types: frozen, strictly decoded (unknown keys are errors), one per concept.

Files and what they decode to:

* ``tiers.yaml``      -> ``router.policy.tiers.TierTable`` (tiers, their models and fallbacks) plus ``models``
* ``rules.yaml``      -> ``RulesFile``: ordered rules, first match wins, the last one is the default
* ``classifier.yaml`` -> ``router.classify.config.ClassifierPolicy``
* ``tenants.yaml``    -> ``TenantsFile``: hashed keys, allowed tiers, rule overrides, rate limits, budgets

No logic beyond field defaults lives here: validation is ``validate``, evaluation is ``rules``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

# What a rule's ``then.tier`` may name besides a tier.
REQUESTED = "requested"
"""Honour the model the client named: that exact model first, then its tier's chain. For ``auto`` there is
nothing to honour, so it means ``by_complexity``."""
BY_COMPLEXITY = "by_complexity"
"""The tier ``classifier.yaml`` maps the request's classified complexity to."""


class Range(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Inclusive bounds; either may be omitted."""

    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Match(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Conditions of a rule. All given conditions must hold; a list condition holds if any entry does.
    An empty ``when`` matches every request."""

    category: tuple[str, ...] = ()
    complexity: tuple[str, ...] = ()
    difficulty: Range | None = None
    confidence: Range | None = None
    input_tokens: Range | None = None
    """Estimated input tokens of the whole request (characters / 4)."""
    max_tokens: Range | None = None
    tools: bool | None = None
    images: bool | None = None
    documents: bool | None = None
    thinking: bool | None = None
    stream: bool | None = None
    model: tuple[str, ...] = ()
    """The requested model or alias, exactly (``auto``, ``opus``, ``claude-opus-4-8``...)."""
    model_regex: str | None = None
    """A regular expression the whole requested model must match."""
    beta: tuple[str, ...] = ()
    """Any of these ``anthropic-beta`` flags is present."""
    hint: tuple[str, ...] = ()
    """The ``x-router-policy`` request header is one of these."""
    tenant: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return self == EMPTY_MATCH


EMPTY_MATCH = Match()


class Action(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tier: str
    """A tier name, ``requested`` or ``by_complexity``."""
    fallback: tuple[str, ...] | None = None
    """Tiers to try after ``tier``, in order; default: the tier's own fallback list."""
    floor: str | None = None
    """Never answer from a tier below this one (targets below it are removed)."""
    cap: str | None = None
    """Never answer from a tier above this one."""
    max_retry_wait_seconds: float | None = None
    """Longest retry-after worth waiting before giving up; default: the tier table's."""
    clamp_max_tokens: bool = True
    """Lower ``max_tokens`` to the target model's output limit instead of letting the upstream refuse."""
    drop_unsupported: bool = True
    """Remove ``thinking`` for a target model that does not support it (e.g. after a fallback)."""
    sticky: bool = False
    """Keep a conversation on the model that answered its first turn (prompt caches are per model)."""


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    then: Action
    when: Match = EMPTY_MATCH
    description: str = ""


class RulesFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rules: tuple[Rule, ...]


class RateLimit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class Budget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    monthly_usd: float
    on_exceeded: str = "reject"
    """``reject`` (429 with a clear message) or ``downgrade`` (to ``downgrade_tier``)."""
    downgrade_tier: str | None = None


class Tenant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: tuple[str, ...]
    """Router API keys as ``sha256:<hex>`` of the key; plaintext keys never live in policy files."""
    allowed_tiers: tuple[str, ...] = ()
    """Empty means every tier."""
    rules: tuple[Rule, ...] = ()
    """Evaluated before the global rules for this tenant's requests (first match wins)."""
    rate_limit: RateLimit | None = None
    budget: Budget | None = None


class TenantsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tenants: dict[str, Tenant] = {}
    open_mode: bool = False
    """Accept requests whose key is not configured (as tenant ``anonymous``). Without tenants and without
    open mode, the router only serves on loopback. A hot reload that drops every tenant is refused unless
    the new file sets this explicitly."""
    classify_endpoint: bool = False
    """Also serve ``POST /v1/router/classify`` on the client port, to tenants with their key (under their rate
    limit and budget, Haiku cost charged to them). It is always served on the admin listener."""


Lifecycle = Literal["active", "deprecated", "retired"]
"""The API's own lifecycle stages (``GET /v1/models``): ``retired`` models answer nothing any more."""


class ModelInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One catalogue entry: prices in USD per million tokens, limits in tokens, lifecycle dates."""

    input: float
    output: float
    cache_read: float | None = None
    """Default: 0.1 x input."""
    cache_write: float | None = None
    """Default: 1.25 x input (5-minute cache writes)."""
    context_tokens: int = 200_000
    max_output_tokens: int = 64_000
    min_output_tokens_per_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """The slowest this model is expected to generate (tokens/s); unset: the table's
    ``slowest_output_tokens_per_s``."""
    features: tuple[str, ...] = ("tools", "images", "documents", "thinking")
    family: str | None = None
    """The model line (haiku, sonnet, opus...). When ``families`` has it, a model no tier lists belongs to
    that family's tier; a line with no ``families`` entry has no tier (forwarded as named, no fallback)."""
    aliases: tuple[str, ...] = ()
    """Other ids clients send for this same model: dated snapshots and ``-latest`` style aliases."""
    lifecycle: Lifecycle = "active"
    """``retired`` models are never a target: no tier may list them, and requests naming them are refused."""
    deprecated_at: date | None = None
    retires_at: date | None = None
    """Scheduled retirement (the API's ``retires_at``); ``lifecycle`` is what says it has happened."""
    assumed_prices: bool = False
    """The prices are the router's assumption (not yet published when the entry was written)."""


class Family(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model line: how ids the catalogue does not list yet are recognised, priced and routed."""

    tier: str
    """The tier the family's models belong to."""
    pattern: str
    """A regular expression the whole model id must match (e.g. ``claude-sonnet-[0-9].*``)."""
    priced_as: str
    """The catalogue id whose prices and limits an unlisted id of this family is given."""
    unlisted: Literal["tier", "forward"] = "tier"
    """An unlisted id of the family: ``tier`` -- tried as named first, then its tier's fallbacks;
    ``forward`` -- forwarded as named with no fallback (priced either way)."""
