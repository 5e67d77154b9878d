"""The shipped policy and the example policies load cleanly, and every case in their ``tests/cases.yaml``
plans the way it says, through the same ``plan()`` the router serves with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from router.classify.features import segments
from router.classify.schema import Classification
from router.errors import ClientFacingError
from router.gateway.facts import HINT_HEADER, request_facts
from router.gateway.plan import plan
from router.policy.loader import Policy, load_policy
from router.policy.rules import Facts
from router.gateway.view import parse_request

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
COST_SAVER = POLICIES / "examples" / "cost-saver"
QUALITY_FIRST = POLICIES / "examples" / "quality-first"
CLAUDE_CODE = POLICIES / "examples" / "claude-code"
POLICY_DIRS = [POLICIES, COST_SAVER, QUALITY_FIRST, CLAUDE_CODE]
CASE_KEYS = {"name", "request", "classification", "headers", "tenant", "expect"}
EXPECT_KEYS = {"tier", "rule", "model", "error"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _cases(directory: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load((directory / "tests" / "cases.yaml").read_text(encoding="utf-8"))
    return list(data["cases"])


def _all_cases() -> list[Any]:
    return [
        pytest.param(directory, case, id=f"{_rel(directory)}::{case['name']}")
        for directory in POLICY_DIRS
        for case in _cases(directory)
    ]


_policies: dict[Path, Policy] = {}


def _policy(directory: Path) -> Policy:
    if directory not in _policies:
        _policies[directory] = load_policy(directory)
    return _policies[directory]


def classification(given: dict[str, Any] | None) -> Classification | None:
    if not given:
        return None
    category = given["category"]
    return Classification(
        category=category,
        complexity=given["complexity"],
        difficulty=float(given.get("difficulty", 0.5)),
        confidence=float(given.get("confidence", 0.9)),
        stage="local",
        scores={category: 1.0},
    )


def facts_for(case: dict[str, Any]) -> Facts:
    """What ``router.gateway.facts.request_facts`` reads from the request, built by hand from the case."""
    body = case["request"]
    raw = msgspec.json.encode(body)
    _, _, _, found, _ = segments(body)
    headers = {name.lower(): str(value).strip() for name, value in (case.get("headers") or {}).items()}
    betas = [flag.strip() for flag in headers.get("anthropic-beta", "").split(",") if flag.strip()]
    return Facts(
        model=body["model"],
        input_tokens=len(raw) // 4,
        max_tokens=body.get("max_tokens"),
        tools=bool(body.get("tools")),
        images=bool(found.get("images")),
        documents=bool(found.get("documents")),
        thinking=bool(found.get("thinking")),
        stream=bool(body.get("stream", False)),
        betas=tuple(betas),
        hint=headers.get(HINT_HEADER),
        tenant=case.get("tenant"),
        classification=classification(case.get("classification")),
    )


@pytest.mark.parametrize("directory", POLICY_DIRS, ids=_rel)
def test_policy_directory_loads_cleanly(directory: Path) -> None:
    policy = load_policy(directory)
    assert policy.version and len(policy.rules) >= 2 and policy.rules[-1].when.is_empty()


@pytest.mark.parametrize("directory", POLICY_DIRS, ids=_rel)
def test_cases_are_well_formed_and_cover_every_rule(directory: Path) -> None:
    cases = _cases(directory)
    assert 6 <= len(cases) <= 12, f"{_rel(directory)}: {len(cases)} cases"
    names = [case["name"] for case in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    for case in cases:
        assert set(case) <= CASE_KEYS and {"name", "request", "expect"} <= set(case), case["name"]
        assert case["expect"] and set(case["expect"]) <= EXPECT_KEYS, case["name"]
        if case["request"]["model"] == "auto":
            assert case.get("classification"), f"{case['name']}: auto cases fix the classification"
    expected_rules = {case["expect"].get("rule") for case in cases}
    policy = _policy(directory)
    missing = [rule.name for rule in policy.rules if rule.name not in expected_rules]
    assert not missing, f"{_rel(directory)}: no case expects rule(s) {missing}"


@pytest.mark.parametrize(("directory", "case"), _all_cases())
def test_case(directory: Path, case: dict[str, Any]) -> None:
    policy = _policy(directory)
    facts = facts_for(case)
    tenant_name = case.get("tenant")
    tenant = policy.tenants.tenants[tenant_name] if tenant_name else None
    expect = case["expect"]
    try:
        decision = plan(facts, policy, {}, 0.0, tenant)
    except ClientFacingError as exc:
        assert expect.get("error") == exc.status, f"{case['name']}: {exc}"
        return
    got = {"tier": decision.tier, "rule": decision.rule, "model": decision.targets[0].model if decision.targets else None}
    wrong = {key: (expect[key], got[key]) for key in ("tier", "rule", "model") if key in expect and expect[key] != got[key]}
    assert not wrong, f"{case['name']}: (expected, got) {wrong}; {decision.reason}; skipped {decision.skipped}"


@pytest.mark.parametrize(("directory", "case"), _all_cases())
def test_hand_built_facts_match_the_router(directory: Path, case: dict[str, Any]) -> None:
    parsed = parse_request(msgspec.json.encode(case["request"]))
    headers = [(str(k), str(v)) for k, v in (case.get("headers") or {}).items()]
    cls = classification(case.get("classification"))
    assert facts_for(case) == request_facts(parsed, headers, case.get("tenant"), cls)


def test_long_context_case_is_really_long() -> None:
    (case,) = [c for c in _cases(POLICIES) if c["expect"].get("rule") == "long-context"]
    assert facts_for(case).input_tokens >= 100_000


def _tiers_tried(directory: Path, category: str, complexity: str, **extra: Any) -> list[str | None]:
    case = {
        "request": {"model": "auto", "max_tokens": 256, "messages": [{"role": "user", "content": "x"}]},
        "classification": {"category": category, "complexity": complexity},
        **extra,
    }
    return [target.tier for target in plan(facts_for(case), _policy(directory), {}, 0.0).targets]


@pytest.mark.parametrize("category", ["chitchat", "code", "math", "summarization", "creative_writing"])
@pytest.mark.parametrize("complexity", ["low", "medium", "high"])
def test_cost_saver_reaches_opus_only_for_hard_reasoning_or_on_request(category: str, complexity: str) -> None:
    tried = _tiers_tried(COST_SAVER, category, complexity)
    hard = complexity == "high" and category in ("math", "reasoning", "code")
    assert ("opus" in tried) == hard, tried
    if hard:
        assert tried == ["opus", "sonnet"]
    else:
        assert tried[0] == ("sonnet" if complexity == "high" else "haiku")
    opted_up = _tiers_tried(COST_SAVER, category, complexity, headers={"x-router-policy": "quality"})
    assert opted_up[0] == {"low": "haiku", "medium": "sonnet", "high": "opus"}[complexity]


@pytest.mark.parametrize("category", ["chitchat", "classification", "extraction", "code", "math", "open_qa"])
@pytest.mark.parametrize("complexity", ["low", "medium", "high"])
def test_quality_first_keeps_non_trivial_work_off_haiku(category: str, complexity: str) -> None:
    tried = _tiers_tried(QUALITY_FIRST, category, complexity)
    trivial = complexity == "low" and category in ("chitchat", "classification", "extraction")
    if trivial:
        assert tried[0] == "haiku"
    else:
        assert "haiku" not in tried, tried
        assert tried[0] == ("sonnet" if complexity == "low" else "opus")
    if complexity == "high":
        assert tried == ["opus", "sonnet"]


def _claude_code_main_loop(model: str) -> dict[str, Any]:
    tool = {"name": "Bash", "description": "Run a shell command", "input_schema": {"type": "object"}}
    return {"request": {"model": model, "max_tokens": 32000, "tools": [tool], "messages": [{"role": "user", "content": "Fix it"}]}}


@pytest.mark.parametrize("model", ["claude-sonnet-5", "claude-opus-4-8", "claude-haiku-4-5-20251001", "claude-sonnet-7"])
def test_claude_code_main_loop_keeps_its_tier_and_sticks_to_the_model_that_answered(model: str) -> None:
    policy = _policy(CLAUDE_CODE)
    facts = facts_for(_claude_code_main_loop(model))
    first = plan(facts, policy, {}, 0.0)
    tier = policy.tiers.tier_of_model(model)
    assert first.targets[0].model == model and first.tier == tier is not None
    assert [t.tier for t in first.targets[1:]] == list(policy.tiers.tiers[tier].fallback), "its own tier's fallbacks"
    if first.rule == "default":
        # The first turn fell back to the next target: later turns start there, never flipping back.
        answered = first.targets[1].model
        later = plan(facts, policy, {}, 0.0, sticky_model=answered)
        assert later.action is not None and later.action.sticky and later.targets[0].model == answered
