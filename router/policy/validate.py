"""Cross-field checks of a decoded policy: every problem found, each with file:line:column and a hint.

Owns the rules ops can break without breaking YAML: unknown tiers or models, duplicate names,
unreachable rules, a missing default rule, bad regular expressions, impossible ranges, negative budgets,
malformed key hashes. Pure: it reads decoded objects and their source positions, and returns problems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from router.classify.config import ClassifierPolicy
from router.classify.schema import CATEGORIES, COMPLEXITIES
from router.policy.keys import is_key_hash
from router.policy.model import BY_COMPLEXITY, REQUESTED, Range, Rule, TenantsFile
from router.policy.source import Path_, Problem, SourceFile
from router.policy.tiers import TierTable



class Checker:
    """Collects problems against one source file."""

    def __init__(self, source: SourceFile) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: Path_, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.source.at(path), message, hint))

    def tier(self, path: Path_, name: str | None, tiers: TierTable, extra: Iterable[str] = ()) -> None:
        if name is not None and name not in tiers.tiers and name not in extra:
            known = ", ".join([*tiers.tiers, *extra])
            self.add(path, f"unknown tier {name!r}", f"one of: {known}")

    def range(self, path: Path_, value: Range | None, low: float | None = None, high: float | None = None) -> None:
        if value is None:
            return
        if value.min is not None and value.max is not None and value.min > value.max:
            self.add(path, f"impossible range: min {value.min} > max {value.max}", "swap min and max")
        for bound in (value.min, value.max):
            if bound is None or not ((low is not None and bound < low) or (high is not None and bound > high)):
                continue
            if high is None:
                self.add(path, f"{bound:g} is negative", "token counts are 0 or more")
            else:
                self.add(path, f"{bound:g} is outside [{low:g}, {high:g}]", "this value is a score between 0 and 1")


def check_tiers(source: SourceFile, tiers: TierTable) -> list[Problem]:
    c = Checker(source)
    seen: dict[str, str] = {}
    for name, tier in tiers.tiers.items():
        if name in (REQUESTED, BY_COMPLEXITY, "auto"):
            c.add(("tiers", name), f"tier name {name!r} is reserved", "pick another name")
        if not tier.models:
            c.add(("tiers", name, "models"), f"tier {name!r} lists no models")
        for index, model in enumerate(tier.models):
            if model in seen:
                c.add(("tiers", name, "models", index), f"model {model!r} is listed by tiers {seen[model]!r} and {name!r}")
            seen[model] = name
            if tiers.models and model not in tiers.models:
                c.add(("tiers", name, "models", index), f"model {model!r} has no entry under 'models'", "add its prices and limits")
        for index, other in enumerate(tier.fallback):
            c.tier(("tiers", name, "fallback", index), other, tiers)
            if other == name:
                c.add(("tiers", name, "fallback", index), f"tier {name!r} lists itself as a fallback")
        if len(set(tier.fallback)) != len(tier.fallback):
            c.add(("tiers", name, "fallback"), f"tier {name!r} repeats a tier in its fallback list")
    c.tier(("default_tier",), tiers.default_tier, tiers)
    for model, info in tiers.models.items():
        if model not in seen and info.family is None and info.lifecycle != "retired":  # family/retired: catalogue entries
            c.add(("models", model), f"model {model!r} is not in any tier", "list it under a tier's models or remove it")
    for key in ("max_retry_wait_seconds", "default_cooldown_seconds"):
        if getattr(tiers, key) < 0:
            c.add((key,), f"{key} must be >= 0")
    for model, info in tiers.models.items():
        for field in ("input", "output", "cache_read", "cache_write"):
            value = getattr(info, field)
            if value is not None and value < 0:
                c.add(("models", model, field), f"negative price {value}")
    return c.problems


def check_rules(source: SourceFile, rules: tuple[Rule, ...], tiers: TierTable, base: Path_ = ("rules",), require_default: bool = True) -> list[Problem]:
    c = Checker(source)
    names: dict[str, int] = {}
    catch_all: int | None = None
    for index, rule in enumerate(rules):
        here = (*base, index)
        if rule.name in names:
            c.add((*here, "name"), f"duplicate rule name {rule.name!r} (also rule {names[rule.name] + 1})")
        names.setdefault(rule.name, index)
        if catch_all is not None:
            c.add(here, f"rule {rule.name!r} is unreachable: rule {rules[catch_all].name!r} before it matches every request", "move it above that rule")
        elif any(rule.when == earlier.when for earlier in rules[:index]) and not rule.when.is_empty():
            c.add(here, f"rule {rule.name!r} is unreachable: an earlier rule has exactly the same conditions")
        if rule.when.is_empty() and catch_all is None:
            catch_all = index
        _check_match(c, (*here, "when"), rule, tiers)
        _check_action(c, (*here, "then"), rule, tiers)
    if require_default and catch_all is None:
        c.add(base, "no default rule: the last rule must have no 'when' conditions so every request matches one", "add '- {name: default, then: {tier: by_complexity}}' at the end")
    return c.problems


def _check_match(c: Checker, path: Path_, rule: Rule, tiers: TierTable) -> None:
    when = rule.when
    for index, category in enumerate(when.category):
        if category not in CATEGORIES:
            c.add((*path, "category", index), f"unknown category {category!r}", "one of: " + ", ".join(CATEGORIES))
    for index, complexity in enumerate(when.complexity):
        if complexity not in COMPLEXITIES:
            c.add((*path, "complexity", index), f"unknown complexity {complexity!r}", "low, medium or high")
    c.range((*path, "difficulty"), when.difficulty, 0.0, 1.0)
    c.range((*path, "confidence"), when.confidence, 0.0, 1.0)
    c.range((*path, "input_tokens"), when.input_tokens, 0.0, None)
    c.range((*path, "max_tokens"), when.max_tokens, 0.0, None)
    if when.model_regex is not None:
        try:
            re.compile(when.model_regex)
        except re.error as exc:
            c.add((*path, "model_regex"), f"bad regular expression: {exc}", "Python re syntax; the whole model id must match")


def _check_action(c: Checker, path: Path_, rule: Rule, tiers: TierTable) -> None:
    then = rule.then
    c.tier((*path, "tier"), then.tier, tiers, (REQUESTED, BY_COMPLEXITY))
    for index, other in enumerate(then.fallback or ()):
        c.tier((*path, "fallback", index), other, tiers)
    c.tier((*path, "floor"), then.floor, tiers)
    c.tier((*path, "cap"), then.cap, tiers)
    if then.floor in tiers.tiers and then.cap in tiers.tiers and tiers.rank(then.floor) > tiers.rank(then.cap):  # type: ignore[arg-type]
        c.add((*path, "floor"), f"floor {then.floor!r} is above cap {then.cap!r}: no tier can answer", "tiers are ranked in the order tiers.yaml lists them")
    if then.max_retry_wait_seconds is not None and then.max_retry_wait_seconds < 0:
        c.add((*path, "max_retry_wait_seconds"), "must be >= 0")


def check_classifier(source: SourceFile, policy: ClassifierPolicy, tiers: TierTable) -> list[Problem]:
    c = Checker(source)
    if not 0.0 <= policy.confidence_threshold <= 1.0:
        c.add(("confidence_threshold",), f"{policy.confidence_threshold} is outside [0, 1]")
    if set(policy.complexity_tiers) != set(COMPLEXITIES):
        c.add(("complexity_tiers",), "complexity_tiers must map exactly low, medium and high")
    for complexity, tier in policy.complexity_tiers.items():
        c.tier(("complexity_tiers", complexity), tier, tiers)
    if policy.haiku.deadline_seconds <= 0:
        c.add(("haiku", "deadline_seconds"), "must be > 0")
    if policy.haiku.max_tokens <= 0:
        c.add(("haiku", "max_tokens"), "must be > 0")
    return c.problems


def check_tenants(source: SourceFile, tenants: TenantsFile, tiers: TierTable) -> list[Problem]:
    c = Checker(source)
    owners: dict[str, str] = {}
    for name, tenant in tenants.tenants.items():
        here: Path_ = ("tenants", name)
        if not tenant.keys:
            c.add((*here, "keys"), f"tenant {name!r} has no keys")
        for index, key in enumerate(tenant.keys):
            if not is_key_hash(key):
                c.add((*here, "keys", index), "keys must be stored hashed as sha256:<64 hex>", "router policy hash-key prints the hash of a key")
            elif key in owners:
                c.add((*here, "keys", index), f"key hash also belongs to tenant {owners[key]!r}")
            owners.setdefault(key, name)
        for index, tier in enumerate(tenant.allowed_tiers):
            c.tier((*here, "allowed_tiers", index), tier, tiers)
        c.problems.extend(check_rules(source, tenant.rules, tiers, (*here, "rules"), require_default=False))
        limit = tenant.rate_limit
        if limit is not None:
            for key in ("requests_per_minute", "tokens_per_minute"):
                value = getattr(limit, key)
                if value is not None and value <= 0:
                    c.add((*here, "rate_limit", key), f"{key} must be > 0")
        budget = tenant.budget
        if budget is not None:
            if budget.monthly_usd < 0:
                c.add((*here, "budget", "monthly_usd"), f"negative budget {budget.monthly_usd}")
            if budget.on_exceeded not in ("reject", "downgrade"):
                c.add((*here, "budget", "on_exceeded"), f"unknown behaviour {budget.on_exceeded!r}", "reject or downgrade")
            if budget.on_exceeded == "downgrade":
                if budget.downgrade_tier is None:
                    c.add((*here, "budget"), "on_exceeded: downgrade needs downgrade_tier")
                c.tier((*here, "budget", "downgrade_tier"), budget.downgrade_tier, tiers)
    return c.problems


def check_catalogue(source: SourceFile, tiers: TierTable) -> list[Problem]:
    """The model catalogue: no tier lists a retired model (it can never be a target), aliases name one
    model each, and every family has a known tier, a usable pattern and a current ``priced_as`` entry."""
    c = Checker(source)
    entries = tiers.models
    for name, tier in tiers.tiers.items():
        for index, model in enumerate(tier.models):
            info = entries[model] if model in entries else None
            if info is not None and info.lifecycle == "retired":
                when = f" on {info.retires_at.isoformat()}" if info.retires_at else ""
                others = [m for m in tier.models if m in entries and entries[m].lifecycle != "retired"]
                c.add(("tiers", name, "models", index), f"model {model!r} was retired{when}: a retired model is never a target",
                      f"remove it from tier {name!r}" + (f" (its other models: {', '.join(others)})" if others else ""))
    owner: dict[str, str] = {model: model for model in entries}
    for model, info in entries.items():
        for index, alias in enumerate(info.aliases):
            if alias in owner:
                c.add(("models", model, "aliases", index), f"alias {alias!r} also names {owner[alias]!r}", "an id names one model")
            owner.setdefault(alias, model)
    for name, family in tiers.families.items():
        c.tier(("families", name, "tier"), family.tier, tiers)
        try:
            re.compile(family.pattern)
        except re.error as exc:
            c.add(("families", name, "pattern"), f"bad regular expression: {exc}", "Python re syntax; the whole model id must match")
        priced = entries[family.priced_as] if family.priced_as in entries else None
        if priced is None:
            c.add(("families", name, "priced_as"), f"model {family.priced_as!r} has no entry under 'models'", "name a catalogue entry")
        elif priced.lifecycle == "retired":
            c.add(("families", name, "priced_as"), f"model {family.priced_as!r} is retired", "price unlisted ids like a current model")
    return c.problems
