"""The model catalogue: what a model id a client sends is, what it costs and which tier it belongs to.

Owns resolving an id -- a catalogue entry, one of its aliases, a dated snapshot or ``-latest`` form of an
entry, or an id that only matches a family's pattern -- to its prices, limits, tier and lifecycle. The
tier table builds one ``ModelCatalogue`` per policy load (``TierTable.__post_init__``), so every lookup the
gateway already makes (``tier_of_model``, ``models.get``) understands what Claude Code and the SDKs send.

Per request a listed id costs one dict lookup; only an id the catalogue does not list is matched against
the (few) family patterns. Pure: no clock, no I/O, nothing learnt from requests (an unlisted id is never
added, so client strings cannot grow the process's memory).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import msgspec

from router.policy.model import Family, ModelInfo

if TYPE_CHECKING:
    from router.policy.tiers import Tier

# A dated snapshot (``claude-haiku-4-5-20251001``) or a ``-latest`` alias of an entry names that entry.
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{8}|latest)$")


class Resolved(msgspec.Struct, frozen=True):
    """What the catalogue knows about one requested id."""

    entry: str
    """The catalogue entry it names; for an unlisted id, the family's ``priced_as`` entry."""
    info: ModelInfo | None
    tier: str | None
    """None when the id is retired, its family forwards unlisted ids, or nothing places it in a tier."""
    family: str | None
    listed: bool
    """False: known only by its family's pattern (priced by the family, counted as unlisted)."""

    @property
    def retired(self) -> bool:
        return self.info is not None and self.info.lifecycle == "retired"


class ModelCatalogue(dict[str, ModelInfo]):
    """The tier table's ``models``: a dict of the entries exactly as written (iterating, ``[]`` and ``in``
    see only those, so validation reports what the file says), whose ``get`` also resolves aliases,
    snapshots and family patterns -- the lookup that prices an answer and clamps its ``max_tokens``."""

    def __init__(self, entries: Mapping[str, ModelInfo], tiers: Mapping[str, Tier], families: Mapping[str, Family]) -> None:
        super().__init__(entries)
        self.families = dict(families)
        self._known: dict[str, Resolved] = {}
        listed_tier: dict[str, str] = {}
        for tier_name, tier in tiers.items():
            for model in tier.models:
                listed_tier.setdefault(model, tier_name)
        for entry, info in entries.items():
            family = families.get(info.family) if info.family else None
            tier = listed_tier.get(entry) or (family.tier if family else None)
            if info.lifecycle == "retired":
                tier = None
            if tier is not None and tier not in tiers:
                tier = None  # validation reports the unknown tier; the lookup must not invent one
            known = Resolved(entry, info, tier, info.family, True)
            for name in (entry, *info.aliases):
                self._known.setdefault(name, known)
        for model, tier_name in listed_tier.items():
            # A tier may list an id without a price entry (a table without ``models``): it still has a tier.
            self._known.setdefault(model, Resolved(model, None, tier_name, None, True))
        self._patterns: list[tuple[str, re.Pattern[str], Family]] = []
        for name, family in families.items():
            try:
                self._patterns.append((name, re.compile(family.pattern), family))
            except re.error:
                continue  # reported by validation with file:line; an unusable pattern matches nothing
        self._tier_names = frozenset(tiers)
        self._primaries = {name: tier.models[0] for name, tier in tiers.items() if tier.models}

    def resolve(self, model: str) -> Resolved | None:
        """Everything the catalogue knows about ``model``, or None for an id it cannot place at all."""
        known = self._known.get(model)
        if known is not None:
            return known
        base = _SNAPSHOT_SUFFIX.sub("", model)
        if base != model and base in self._known:
            return self._known[base]
        for name, pattern, family in self._patterns:
            if pattern.fullmatch(model):
                tier = family.tier if family.unlisted == "tier" and family.tier in self._tier_names else None
                return Resolved(family.priced_as, dict.get(self, family.priced_as), tier, name, False)
        return None

    def get(self, model: str, default: ModelInfo | None = None) -> ModelInfo | None:  # type: ignore[override]
        """Prices and limits for ``model`` (an entry, alias, snapshot or family match), else ``default``."""
        found = self.resolve(model)
        if found is None or found.info is None:
            return default
        return found.info

    def tier_of(self, model: str) -> str | None:
        found = self.resolve(model)
        return found.tier if found is not None else None

    def unlisted_family(self, model: str) -> str | None:
        """The family of an id known only by its family's pattern (what the unlisted-model metric counts)."""
        found = self.resolve(model)
        return found.family if found is not None and not found.listed else None

    def label(self, model: str | None) -> str | None:
        """A metric-safe name for ``model``: its entry id, or ``family:<name>`` for an unlisted id, or None.
        Always a value from the policy, never the client's own string."""
        found = self.resolve(model) if model else None
        if found is None:
            return None
        return found.entry if found.listed else f"family:{found.family}"

    def retirement(self, model: str) -> str | None:
        """For a retired id: the message a client asking for it gets (404 not_found_error); else None."""
        found = self.resolve(model)
        if found is None or not found.retired or found.info is None:
            return None
        when = f" on {found.info.retires_at.isoformat()}" if found.info.retires_at else ""
        family = self.families.get(found.family or "")
        current = self._primaries.get(family.tier, family.priced_as) if family is not None else None
        instead = f"; use a current model such as {current}" if current else ""
        return f"model {model!r} was retired{when} and no longer answers{instead}"

    def ids(self) -> Iterator[str]:
        """Every id the catalogue lists, aliases included."""
        return iter(self._known)
