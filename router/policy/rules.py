"""Evaluating rules: the facts of a request, whether a rule's conditions hold, and which rule wins.

Pure functions. ``explain`` and ``router policy test`` call the same code the router serves with, so what
they show is what happens. Every non-match has a reason, so "why did this request go to Opus?" has an
answer that names the rules that did not match and the condition each failed on.
"""

from __future__ import annotations

import re
from functools import lru_cache

import msgspec

from router.classify.schema import Classification
from router.policy.model import Match, Range, Rule


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What rules may look at. Classification fields are None when the request was not classified."""

    model: str
    input_tokens: int
    max_tokens: int | None
    tools: bool
    images: bool
    documents: bool
    thinking: bool
    stream: bool
    betas: tuple[str, ...] = ()
    hint: str | None = None
    tenant: str | None = None
    classification: Classification | None = None


class Verdict(msgspec.Struct, frozen=True):
    rule: Rule
    key: str
    """``name`` for a global rule, ``tenant/name`` for a tenant's override."""
    skipped: tuple[tuple[str, str], ...]
    """(rule key, the condition it failed on) for every rule tried before the winner."""


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _range(name: str, bounds: Range | None, value: float | None) -> str | None:
    if bounds is None:
        return None
    if value is None:
        return f"{name}: not known for this request"
    if not bounds.contains(value):
        return f"{name} {value:g} not in [{'' if bounds.min is None else f'{bounds.min:g}'}, {'' if bounds.max is None else f'{bounds.max:g}'}]"
    return None


def _flag(name: str, wanted: bool | None, actual: bool) -> str | None:
    if wanted is None or wanted == actual:
        return None
    return f"{name} is {str(actual).lower()}, rule wants {str(wanted).lower()}"


def failed_condition(when: Match, facts: Facts) -> str | None:
    """None when every condition holds; otherwise a short description of the first that does not."""
    c = facts.classification
    if when.category and (c is None or c.category not in when.category):
        return "category: not classified" if c is None else f"category {c.category} not in {list(when.category)}"
    if when.complexity and (c is None or c.complexity not in when.complexity):
        return "complexity: not classified" if c is None else f"complexity {c.complexity} not in {list(when.complexity)}"
    for problem in (
        _range("difficulty", when.difficulty, c.difficulty if c else None),
        _range("confidence", when.confidence, c.confidence if c else None),
        _range("input_tokens", when.input_tokens, facts.input_tokens),
        _range("max_tokens", when.max_tokens, facts.max_tokens),
        _flag("tools", when.tools, facts.tools),
        _flag("images", when.images, facts.images),
        _flag("documents", when.documents, facts.documents),
        _flag("thinking", when.thinking, facts.thinking),
        _flag("stream", when.stream, facts.stream),
    ):
        if problem:
            return problem
    if when.model and facts.model not in when.model:
        return f"model {facts.model!r} not in {list(when.model)}"
    if when.model_regex is not None and not _regex(when.model_regex).fullmatch(facts.model):
        return f"model {facts.model!r} does not match /{when.model_regex}/"
    if when.beta and not set(when.beta) & set(facts.betas):
        return f"none of the beta flags {list(when.beta)} sent"
    if when.hint and facts.hint not in when.hint:
        return f"x-router-policy hint {facts.hint!r} not in {list(when.hint)}"
    if when.tenant and facts.tenant not in when.tenant:
        return f"tenant {facts.tenant!r} not in {list(when.tenant)}"
    return None


def decide(rules: tuple[Rule, ...], facts: Facts, tenant_rules: tuple[Rule, ...] = ()) -> Verdict:
    """First match wins: the tenant's own rules, then the global rules (whose last rule matches all)."""
    skipped: list[tuple[str, str]] = []
    for prefix, candidates in ((f"{facts.tenant}/", tenant_rules), ("", rules)):
        for rule in candidates:
            problem = failed_condition(rule.when, facts)
            if problem is None:
                return Verdict(rule, prefix + rule.name, tuple(skipped))
            skipped.append((prefix + rule.name, problem))
    raise LookupError("no rule matched: the policy has no default rule")  # validation prevents this
