"""Ops tooling over a policy: explain one decision, run the test cases kept beside a policy, and replay
recorded requests through two policies to see what would change and what it would cost.

Pure functions over a loaded ``Policy`` and plain request bodies; the CLI (``commands``) and the HTTP
explain endpoint call them. They go through ``plan`` itself, so what they report is what the router does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from router.classify.schema import Classification
from router.errors import ClientFacingError
from router.gateway.facts import request_facts
from router.gateway.plan import Plan, plan
from router.policy.loader import Policy
from router.policy.rules import Facts
from router.gateway.view import parse_request

Classify = Callable[[dict[str, Any]], Classification]
ASSUMED_OUTPUT_TOKENS = 1024
"""Output tokens assumed per request for projected cost: ``max_tokens`` when lower."""


def facts_for(
    policy: Policy,
    body: dict[str, Any],
    headers: Mapping[str, str] | None,
    tenant: str | None,
    classification: Classification | None,
) -> Facts:
    parsed = parse_request(msgspec.json.encode(body))
    return request_facts(parsed, (headers or {}).items(), tenant, classification)


def decide(policy: Policy, facts: Facts, tenant: str | None) -> Plan:
    tenant_policy = policy.tenants.tenants.get(tenant) if tenant else None
    return plan(facts, policy, {}, 0.0, tenant_policy)


def explain(
    policy: Policy,
    body: dict[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    classification: Classification | None = None,
) -> dict[str, Any]:
    """Why a request goes where it goes: classification, the matched rule with file:line, why each
    earlier rule did not match, and the fallback chain."""
    facts = facts_for(policy, body, headers, tenant, classification)
    decision = decide(policy, facts, tenant)
    return {
        "policy_version": policy.version,
        "tenant": tenant,
        "classification": msgspec.to_builtins(classification) if classification else None,
        "facts": {k: v for k, v in msgspec.to_builtins(facts).items() if k not in ("classification",)},
        "rule": {
            "name": decision.rule,
            "origin": decision.origin,
            "then": msgspec.to_builtins(decision.action) if decision.action else None,
        },
        "not_matched": [
            {"rule": key, "origin": policy.origins.get(key, "<built-in>"), "because": why} for key, why in decision.skipped
        ],
        "reason": decision.reason,
        "tier": decision.tier,
        "targets": [{"model": t.model, "tier": t.tier} for t in decision.targets],
    }


class CaseResult(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str


def load_cases(policy_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Test cases from ``<policy_dir>/tests/*.yaml``: (file, case) pairs."""
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((Path(policy_dir) / "tests").glob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for case in data.get("cases") or []:
            cases.append((str(path), case))
    return cases


def _case_classification(case: dict[str, Any], body: dict[str, Any], classify: Classify | None) -> Classification | None:
    given = case.get("classification")
    if given:
        category = given["category"]
        return Classification(
            category=category,
            complexity=given.get("complexity", "low"),
            difficulty=float(given.get("difficulty", 0.5)),
            confidence=float(given.get("confidence", 0.9)),
            stage="local",
            scores={category: 1.0},
        )
    if body.get("model") == "auto" and classify is not None:
        return classify(body)
    return None


def run_case(policy: Policy, case: dict[str, Any], classify: Classify | None) -> CaseResult:
    name = str(case.get("name", "unnamed"))
    body = case["request"]
    expect = case.get("expect") or {}
    tenant = case.get("tenant")
    try:
        classification = _case_classification(case, body, classify)
        facts = facts_for(policy, body, case.get("headers"), tenant, classification)
        decision = decide(policy, facts, tenant)
    except ClientFacingError as exc:
        got = {"error": exc.status}
        ok = expect.get("error") == exc.status
        return CaseResult(name, ok, "" if ok else f"expected {expect}, got error {exc.status}: {exc.message}")
    got = {"tier": decision.tier, "rule": decision.rule, "model": decision.targets[0].model if decision.targets else None}
    wrong = [f"{key}: expected {expect[key]!r}, got {got.get(key)!r}" for key in ("tier", "rule", "model") if key in expect and expect[key] != got.get(key)]
    if not wrong:
        return CaseResult(name, True, "")
    why = "; ".join(f"{k} ({w})" for k, w in decision.skipped) or "no earlier rule"
    detail = (
        "\n    ".join(wrong)
        + f"\n    decided by rule {decision.rule!r} at {decision.origin}: {decision.reason}"
        + f"\n    rules that did not match: {why}"
    )
    return CaseResult(name, False, detail)


class Change(msgspec.Struct, frozen=True):
    """One replayed request whose tier differs between the two policies."""

    index: int
    """Position of the request in the replay (0-based)."""
    old: str
    new: str
    cost_delta_usd: float
    """Projected cost under the new policy minus under the old one."""


class DiffReport(msgspec.Struct, frozen=True):
    requests: int
    changed: int
    transitions: dict[str, int]
    """``old -> new`` tier pairs that changed, with counts."""
    cost_old_usd: float
    cost_new_usd: float
    changes: tuple[Change, ...] = ()
    """The changed requests in replay order, at most ``limit`` of them."""
    changes_not_shown: int = 0
    """Changed requests past ``limit``."""


def _projected_cost(policy: Policy, decision: Plan, facts: Facts) -> float:
    if not decision.targets:
        return 0.0
    info = policy.tiers.models.get(decision.targets[0].model)
    if info is None:
        return 0.0
    output = min(facts.max_tokens or ASSUMED_OUTPUT_TOKENS, ASSUMED_OUTPUT_TOKENS)
    return (facts.input_tokens * info.input + output * info.output) / 1_000_000


def _outcome(policy: Policy, body: dict[str, Any], classification: Classification | None) -> tuple[str, float]:
    """(tier or ``passthrough``/``refused``, projected cost) of one request under one policy."""
    try:
        facts = facts_for(policy, body, None, None, classification)
        decision = decide(policy, facts, None)
    except ClientFacingError:
        return "refused", 0.0
    return decision.tier or "passthrough", _projected_cost(policy, decision, facts)


def diff(
    old: Policy, new: Policy, bodies: Iterable[dict[str, Any]], classify: Classify | None, limit: int | None = None
) -> DiffReport:
    """Replay requests through both policies (each classified once) and compare tiers and projected cost;
    list the changed requests (the first ``limit`` of them; all when None)."""
    transitions: Counter[str] = Counter()
    changes: list[Change] = []
    total = changed = 0
    cost_old = cost_new = 0.0
    for index, body in enumerate(bodies):
        total += 1
        classification = classify(body) if classify is not None and body.get("model") == "auto" else None
        old_tier, old_cost = _outcome(old, body, classification)
        new_tier, new_cost = _outcome(new, body, classification)
        cost_old += old_cost
        cost_new += new_cost
        if old_tier != new_tier:
            changed += 1
            transitions[f"{old_tier} -> {new_tier}"] += 1
            if limit is None or len(changes) < limit:
                changes.append(Change(index, old_tier, new_tier, round(new_cost - old_cost, 6)))
    return DiffReport(
        total,
        changed,
        dict(transitions.most_common()),
        round(cost_old, 6),
        round(cost_new, 6),
        tuple(changes),
        changed - len(changes),
    )
