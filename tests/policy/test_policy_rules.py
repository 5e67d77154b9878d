"""The policy engine end to end: every matcher, action, guard and validation error, with file:line.

Each test writes a policy directory into ``tmp_path`` (the shipped ``tiers.yaml`` plus the rules, tenants
or classifier file under test), loads it with the real ``load_policy`` and either plans requests against
the result or inspects the ``PolicyError``. Validation tests assert the exact file and line of the problem
(computed from the YAML text written, so the expectation reads next to the YAML) and that its message and
hint say what is wrong.

Some tests were written first as strict xfails for bugs found in the policy code (budget caps loosening a
rule's cap or floor, dict-key typos pointing at the wrong line, empty files, a spurious missing-default
problem, token-range messages, the built-in rule's origin, decode errors hiding other files' problems);
the fixes made them pass.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import pytest

from router.classify.schema import CATEGORIES, Classification
from router.errors import NoAllowedTarget
from router.gateway.plan import Plan, Target, plan
from router.policy.loader import Policy, load_policy
from router.policy.model import Match, Range
from router.policy.rules import Facts, decide, failed_condition
from router.policy.source import PolicyError, Problem

POLICIES = Path(__file__).resolve().parents[2] / "policies"

# ---------------------------------------------------------------------------------------------------------
# helpers


def _text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def write_policy(directory: Path, files: dict[str, str | None], tiers: bool = True) -> Path:
    """A policy directory: the shipped tiers.yaml (unless ``tiers`` is False or overridden) plus ``files``
    (dedented; ``None`` removes the file)."""
    directory.mkdir(parents=True, exist_ok=True)
    if tiers:
        shutil.copyfile(POLICIES / "tiers.yaml", directory / "tiers.yaml")
    for name, text in files.items():
        if text is None:
            (directory / name).unlink(missing_ok=True)
        else:
            (directory / name).write_text(_text(text), encoding="utf-8")
    return directory


def load(tmp_path: Path, **files: str | None) -> Policy:
    """Load a policy directory with ``rules_yaml=``, ``tenants_yaml=``, ``classifier_yaml=`` or ``tiers_yaml=``."""
    return load_policy(write_policy(tmp_path / "policies", {k.removesuffix("_yaml") + ".yaml": v for k, v in files.items()}))


def fail(tmp_path: Path, files: dict[str, str | None], tiers: bool = True) -> PolicyError:
    directory = write_policy(tmp_path / "policies", files, tiers)
    with pytest.raises(PolicyError) as info:
        load_policy(directory)
    error = info.value
    assert error.problems, "a PolicyError must carry at least one problem"
    assert str(error) == "\n".join(str(p) for p in error.problems)
    return error


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line of (dedented) ``text`` containing ``needle``."""
    hits = [number for number, line in enumerate(_text(text).splitlines(), 1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} occurs {len(hits)} times in the YAML under test"
    return hits[occurrence - 1]


def problem_at(error: PolicyError, file: str, line: int, *fragments: str) -> Problem:
    """The one problem in ``file`` at ``line`` whose text contains every fragment; fails listing them all."""
    found = [
        p
        for p in error.problems
        if Path(p.position.file).name == file and p.position.line == line and all(f in str(p) for f in fragments)
    ]
    listing = "\n".join(str(p) for p in error.problems)
    assert len(found) == 1, f"expected one problem at {file}:{line} mentioning {fragments}, got:\n{listing}"
    problem = found[0]
    # Readable: "<dir>/<file>:<line>:<column>: <message>" with the full path of the file in the directory.
    assert Path(problem.position.file).parent.name == "policies"
    assert problem.position.column >= 1
    assert str(problem).startswith(f"{problem.position.file}:{line}:{problem.position.column}: ")
    assert f"{file}:{line}:" in str(error)
    assert problem.message and not problem.message.startswith(" ")
    return problem


def only_problem(error: PolicyError, file: str, line: int, *fragments: str) -> Problem:
    listing = "\n".join(str(p) for p in error.problems)
    assert len(error.problems) == 1, f"expected exactly one problem, got:\n{listing}"
    return problem_at(error, file, line, *fragments)


def cls(category: str = "open_qa", complexity: str = "low", difficulty: float = 0.5, confidence: float = 0.9) -> Classification:
    return Classification(
        category=category,
        complexity=complexity,
        difficulty=difficulty,
        confidence=confidence,
        stage="local",
        scores={category: 1.0},
    )


def facts(model: str = "auto", **kw: object) -> Facts:
    values: dict[str, object] = {
        "model": model,
        "input_tokens": 100,
        "max_tokens": 100,
        "tools": False,
        "images": False,
        "documents": False,
        "thinking": False,
        "stream": False,
    }
    values.update(kw)
    return Facts(**values)  # type: ignore[arg-type]


def models(p: Plan) -> list[str]:
    return [t.model for t in p.targets]


def tiers_of(p: Plan) -> list[str | None]:
    return [t.tier for t in p.targets]


def primary(policy: Policy, tier: str) -> str:
    return policy.tiers.tiers[tier].primary


def key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def probe_rules(when: str, then: str = "{tier: opus, fallback: []}") -> str:
    """rules.yaml with one rule ``probe`` (``when``/``then`` as YAML flow text) and a ``requested`` default."""
    return f"rules:\n  - name: probe\n    when: {when}\n    then: {then}\n  - name: default\n    then: {{tier: requested}}\n"


# Sanity of the helpers themselves (they are what every other test stands on).


def test_helpers_write_a_loadable_directory_with_the_shipped_tiers(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{tools: true}"))
    assert [r.name for r in policy.rules] == ["probe", "default"]
    assert list(policy.tiers.tiers) == ["haiku", "sonnet", "opus"], "tests assume tiers listed cheapest first"
    assert policy.tiers.default_tier == "sonnet"
    assert policy.tiers.tiers["opus"].fallback == ("sonnet", "haiku")
    assert policy.tiers.tiers["sonnet"].fallback == ("opus", "haiku")
    assert policy.tiers.tiers["haiku"].fallback == ("sonnet", "opus")


# ---------------------------------------------------------------------------------------------------------
# 1. Matchers, straight through failed_condition


M_CLS = cls(category="code", complexity="high", difficulty=0.8, confidence=0.7)


@pytest.mark.parametrize(
    "when, f, failure",
    [
        # category (any of), complexity (any of)
        (Match(category=("code", "math")), facts(classification=M_CLS), None),
        (Match(category=("math",)), facts(classification=M_CLS), "category code not in ['math']"),
        (Match(complexity=("high",)), facts(classification=M_CLS), None),
        (Match(complexity=("low", "medium")), facts(classification=M_CLS), "complexity high not in ['low', 'medium']"),
        # difficulty / confidence: inclusive ranges, either bound optional
        (Match(difficulty=Range(min=0.8)), facts(classification=M_CLS), None),
        (Match(difficulty=Range(max=0.8)), facts(classification=M_CLS), None),
        (Match(difficulty=Range(min=0.81)), facts(classification=M_CLS), "difficulty 0.8 not in [0.81, ]"),
        (Match(difficulty=Range(min=0.1, max=0.5)), facts(classification=M_CLS), "difficulty 0.8 not in [0.1, 0.5]"),
        (Match(confidence=Range(min=0.5, max=0.7)), facts(classification=M_CLS), None),
        (Match(confidence=Range(min=0.75)), facts(classification=M_CLS), "confidence 0.7 not in [0.75, ]"),
        (Match(confidence=Range(max=0.6)), facts(classification=M_CLS), "confidence 0.7 not in [, 0.6]"),
        # input_tokens / max_tokens
        (Match(input_tokens=Range(min=100, max=100)), facts(input_tokens=100), None),
        (Match(input_tokens=Range(min=100_000)), facts(input_tokens=99_999), "input_tokens 99999 not in [100000, ]"),
        (Match(input_tokens=Range(max=10)), facts(input_tokens=11), "input_tokens 11 not in [, 10]"),
        (Match(max_tokens=Range(min=1, max=4096)), facts(max_tokens=4096), None),
        (Match(max_tokens=Range(max=4096)), facts(max_tokens=4097), "max_tokens 4097 not in [, 4096]"),
        (Match(max_tokens=Range(min=1)), facts(max_tokens=None), "max_tokens: not known for this request"),
        # booleans: a wanted value must equal the request's
        (Match(tools=True), facts(tools=True), None),
        (Match(tools=True), facts(tools=False), "tools is false, rule wants true"),
        (Match(tools=False), facts(tools=True), "tools is true, rule wants false"),
        (Match(images=True), facts(images=True), None),
        (Match(images=True), facts(images=False), "images is false, rule wants true"),
        (Match(documents=True), facts(documents=True), None),
        (Match(documents=False), facts(documents=True), "documents is true, rule wants false"),
        (Match(thinking=True), facts(thinking=True), None),
        (Match(thinking=True), facts(thinking=False), "thinking is false, rule wants true"),
        (Match(stream=False), facts(stream=False), None),
        (Match(stream=True), facts(stream=False), "stream is false, rule wants true"),
        # model: exact, any of
        (Match(model=("auto", "opus")), facts("opus"), None),
        (Match(model=("claude-opus-4-8",)), facts("claude-opus-4-8"), None),
        (Match(model=("claude-opus-4-8",)), facts("claude-opus-4-8-20990101"), "model 'claude-opus-4-8-20990101' not in ['claude-opus-4-8']"),
        (Match(model=("opus",)), facts("claude-opus-4-8"), "model 'claude-opus-4-8' not in ['opus']"),
        # model_regex: the WHOLE id must match (fullmatch, not search)
        (Match(model_regex=r"claude-opus-.*"), facts("claude-opus-4-8"), None),
        (Match(model_regex=r"claude-(opus|sonnet)-4-\d"), facts("claude-sonnet-4-6"), None),
        (Match(model_regex=r"opus"), facts("claude-opus-4-8"), "model 'claude-opus-4-8' does not match /opus/"),
        (Match(model_regex=r"claude-opus"), facts("claude-opus-4-8"), "model 'claude-opus-4-8' does not match /claude-opus/"),
        (Match(model_regex=r"4-8"), facts("claude-opus-4-8"), "model 'claude-opus-4-8' does not match /4-8/"),
        # beta: any of the listed flags was sent
        (Match(beta=("b2", "b3")), facts(betas=("b1", "b3")), None),
        (Match(beta=("b2",)), facts(betas=("b1",)), "none of the beta flags ['b2'] sent"),
        (Match(beta=("b2",)), facts(), "none of the beta flags ['b2'] sent"),
        # hint: the x-router-policy header value
        (Match(hint=("cheap", "fast")), facts(hint="fast"), None),
        (Match(hint=("cheap",)), facts(hint="best"), "x-router-policy hint 'best' not in ['cheap']"),
        (Match(hint=("cheap",)), facts(), "x-router-policy hint None not in ['cheap']"),
        # tenant
        (Match(tenant=("acme",)), facts(tenant="acme"), None),
        (Match(tenant=("acme",)), facts(tenant="globex"), "tenant 'globex' not in ['acme']"),
        (Match(tenant=("acme",)), facts(), "tenant None not in ['acme']"),
    ],
)
def test_each_matcher_holds_or_fails_with_its_reason(when, f, failure):
    assert failed_condition(when, f) == failure


@pytest.mark.parametrize(
    "when, reason",
    [
        (Match(category=("code",)), "category: not classified"),
        (Match(complexity=("high",)), "complexity: not classified"),
        (Match(difficulty=Range(min=0.0)), "difficulty: not known for this request"),
        (Match(confidence=Range(max=1.0)), "confidence: not known for this request"),
    ],
)
def test_classification_conditions_fail_with_a_clear_reason_when_not_classified(when, reason):
    # Even a range that covers every possible score does not match a request that has no score at all.
    assert failed_condition(when, facts(classification=None)) == reason


def test_empty_when_matches_everything():
    assert Match().is_empty()
    for f in (
        facts(),
        facts("claude-unknown-1", tools=True, images=True, documents=True, thinking=True, stream=True, max_tokens=None),
        facts("opus", classification=cls("math", "high"), hint="x", tenant="t", betas=("b",)),
    ):
        assert failed_condition(Match(), f) is None


def test_all_conditions_must_hold_and_the_first_failing_one_is_named():
    when = Match(category=("code",), tools=True, model=("auto",), hint=("cheap",))
    assert failed_condition(when, facts(classification=cls("code"), tools=True, hint="cheap")) is None
    assert failed_condition(when, facts(classification=cls("code"), tools=True, hint="best")).startswith("x-router-policy")
    assert failed_condition(when, facts("opus", classification=cls("code"), tools=True, hint="cheap")).startswith("model")
    assert failed_condition(when, facts(classification=cls("code"), tools=False, hint="cheap")).startswith("tools")
    assert failed_condition(when, facts(classification=cls("math"), tools=False, hint="best")).startswith("category")


def test_decide_first_match_wins_and_lists_skipped_rules_with_their_failing_condition(tmp_path):
    policy = load(
        tmp_path,
        rules_yaml="""
        rules:
          - name: tools
            when: {tools: true}
            then: {tier: opus}
          - name: stream
            when: {stream: true}
            then: {tier: haiku}
          - name: also-stream
            when: {stream: true, thinking: false}
            then: {tier: sonnet}
          - name: default
            then: {tier: requested}
        """,
    )
    verdict = decide(policy.rules, facts(stream=True))
    assert verdict.key == "stream" and verdict.rule.then.tier == "haiku"
    assert verdict.skipped == (("tools", "tools is false, rule wants true"),)
    verdict = decide(policy.rules, facts(stream=True, tools=True))
    assert verdict.key == "tools" and verdict.skipped == ()
    verdict = decide(policy.rules, facts())
    assert verdict.key == "default"
    assert verdict.skipped == (
        ("tools", "tools is false, rule wants true"),
        ("stream", "stream is false, rule wants true"),
        ("also-stream", "stream is false, rule wants true"),
    )


# ---------------------------------------------------------------------------------------------------------
# 1b. Matchers as written in rules.yaml, through plan()

ALL_FLAGS = {"tools": True, "images": True, "documents": True, "thinking": True, "stream": True}


@pytest.mark.parametrize(
    "when, matching, not_matching, reason",
    [
        ("{category: [code, math]}", facts(classification=cls("math")), facts(classification=cls("chitchat")), "category chitchat not in"),
        ("{category: [code]}", facts(classification=cls("code")), facts(), "category: not classified"),
        ("{complexity: [high]}", facts(classification=cls(complexity="high")), facts(classification=cls(complexity="low")), "complexity low not in"),
        ("{complexity: [low]}", facts(classification=cls(complexity="low")), facts(), "complexity: not classified"),
        ("{difficulty: {min: 0.6, max: 0.9}}", facts(classification=cls(difficulty=0.6)), facts(classification=cls(difficulty=0.95)), "difficulty 0.95 not in [0.6, 0.9]"),
        ("{difficulty: {min: 0}}", facts(classification=cls(difficulty=0.0)), facts(), "difficulty: not known"),
        ("{confidence: {max: 0.5}}", facts(classification=cls(confidence=0.5)), facts(classification=cls(confidence=0.51)), "confidence 0.51 not in [, 0.5]"),
        ("{confidence: {min: 0}}", facts(classification=cls(confidence=0.0)), facts(), "confidence: not known"),
        ("{input_tokens: {min: 100000}}", facts(input_tokens=100_000), facts(input_tokens=99_999), "input_tokens 99999 not in [100000, ]"),
        ("{input_tokens: {max: 50}}", facts(input_tokens=50), facts(input_tokens=51), "input_tokens 51 not in [, 50]"),
        ("{max_tokens: {min: 8192}}", facts(max_tokens=8192), facts(max_tokens=8191), "max_tokens 8191 not in [8192, ]"),
        ("{max_tokens: {max: 10}}", facts(max_tokens=10), facts(max_tokens=None), "max_tokens: not known"),
        ("{tools: true}", facts(tools=True), facts(), "tools is false, rule wants true"),
        ("{tools: false}", facts(), facts(tools=True), "tools is true, rule wants false"),
        ("{images: true}", facts(images=True), facts(), "images is false, rule wants true"),
        ("{documents: true}", facts(documents=True), facts(), "documents is false, rule wants true"),
        ("{thinking: true}", facts(thinking=True), facts(), "thinking is false, rule wants true"),
        ("{stream: false}", facts(), facts(stream=True), "stream is true, rule wants false"),
        ("{tools: true, images: true, documents: true, thinking: true, stream: true}", facts(**ALL_FLAGS), facts(**{**ALL_FLAGS, "stream": False}), "stream is false"),
        ("{model: [claude-sonnet-4-6, haiku]}", facts("claude-sonnet-4-6"), facts("claude-sonnet-5-5"), "model 'claude-sonnet-5-5' not in"),
        ("{model: [auto]}", facts("auto"), facts("sonnet"), "model 'sonnet' not in ['auto']"),
        ("{model_regex: 'claude-sonnet-4-.*'}", facts("claude-sonnet-4-6"), facts("claude-sonnet-5-5"), "does not match /claude-sonnet-4-.*/"),
        ("{model_regex: 'sonnet'}", facts("sonnet"), facts("claude-sonnet-4-6"), "does not match /sonnet/"),
        ("{beta: [context-1m-2025-08-07, other]}", facts(betas=("x", "context-1m-2025-08-07")), facts(betas=("x",)), "none of the beta flags"),
        ("{hint: [cheap]}", facts(hint="cheap"), facts(hint="CHEAP"), "hint 'CHEAP' not in ['cheap']"),
        ("{tenant: [acme, globex]}", facts(tenant="globex"), facts(tenant="initech"), "tenant 'initech' not in"),
    ],
)
def test_every_matcher_from_rules_yaml_decides_the_plan(tmp_path, when, matching, not_matching, reason):
    policy = load(tmp_path, rules_yaml=probe_rules(when))
    hit = plan(matching, policy, {}, 0.0)
    assert hit.rule == "probe" and hit.skipped == ()
    assert models(hit) == [primary(policy, "opus")]
    miss = plan(not_matching, policy, {}, 0.0)
    assert miss.rule == "default"
    assert len(miss.skipped) == 1 and miss.skipped[0][0] == "probe"
    assert reason in miss.skipped[0][1], miss.skipped


def test_empty_or_absent_when_is_the_catch_all_in_rules_yaml(tmp_path):
    policy = load(
        tmp_path,
        rules_yaml="""
        rules:
          - name: everything
            when: {}
            then: {tier: haiku, fallback: []}
        """,
    )
    assert policy.rules[0].when.is_empty()
    for f in (facts(), facts("opus", tools=True, classification=cls("math", "high")), facts("claude-nope-1")):
        p = plan(f, policy, {}, 0.0)
        assert p.rule == "everything" and models(p) == [primary(policy, "haiku")]


def test_plan_first_match_wins_skipped_lists_earlier_rules_and_origin_points_at_the_winner(tmp_path):
    rules = """
    # routing rules under test
    rules:
      - name: only-images
        when: {images: true}
        then: {tier: haiku}

      - name: long
        when: {input_tokens: {min: 1000}}
        then: {tier: opus}

      - name: long-too
        when: {input_tokens: {min: 500}}
        then: {tier: haiku}

      - name: default
        then: {tier: requested}
    """
    policy = load(tmp_path, rules_yaml=rules)
    p = plan(facts(input_tokens=5000), policy, {}, 0.0)
    assert p.rule == "long" and p.tier == "opus"
    assert p.skipped == (("only-images", "images is false, rule wants true"),)
    assert p.origin == f"{tmp_path / 'policies' / 'rules.yaml'}:{line_of(rules, '- name: long')}"
    assert p.origin.endswith(f"rules.yaml:{line_of(rules, '- name: long')}")
    p = plan(facts("haiku", input_tokens=10), policy, {}, 0.0)
    assert p.rule == "default" and p.origin.endswith(f"rules.yaml:{line_of(rules, '- name: default')}")
    assert [name for name, _ in p.skipped] == ["only-images", "long", "long-too"]
    assert p.skipped[1] == ("long", "input_tokens 10 not in [1000, ]")
    assert p.skipped[2] == ("long-too", "input_tokens 10 not in [500, ]")


# ---------------------------------------------------------------------------------------------------------
# 2. Actions


def test_tier_name_sends_to_its_primary_then_its_own_fallbacks(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: haiku}"))
    p = plan(facts("opus", hint="x"), policy, {}, 0.0)
    assert p.rule == "probe" and p.tier == "haiku"
    assert p.targets == (
        Target(primary(policy, "haiku"), "haiku"),
        Target(primary(policy, "sonnet"), "sonnet"),
        Target(primary(policy, "opus"), "opus"),
    )
    assert "rule sends to tier haiku" in p.reason
    assert p.action is not None and p.action.tier == "haiku"


def test_fallback_override_replaces_the_tiers_own_chain(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, fallback: [haiku]}"))
    p = plan(facts(hint="x"), policy, {}, 0.0)
    assert p.targets == (Target(primary(policy, "opus"), "opus"), Target(primary(policy, "haiku"), "haiku"))


def test_empty_fallback_override_means_no_fallback(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: sonnet, fallback: []}"))
    assert models(plan(facts(hint="x"), policy, {}, 0.0)) == [primary(policy, "sonnet")]


CLASSIFIER_SKEWED = """
model: triage-local-v1
confidence_threshold: 0.5
complexity_tiers: {low: sonnet, medium: opus, high: haiku}
"""


@pytest.mark.parametrize("complexity, tier", [("low", "sonnet"), ("medium", "opus"), ("high", "haiku")])
def test_by_complexity_uses_classifier_yaml_complexity_tiers(tmp_path, complexity, tier):
    policy = load(
        tmp_path,
        classifier_yaml=CLASSIFIER_SKEWED,
        rules_yaml="rules:\n  - name: triage\n    then: {tier: by_complexity}\n",
    )
    # by_complexity ignores the requested model: even a named tier goes where the classification says.
    for model in ("auto", "opus", "claude-haiku-4-5"):
        p = plan(facts(model, classification=cls("code", complexity)), policy, {}, 0.0)
        assert p.rule == "triage" and p.tier == tier
        assert p.targets[0] == Target(primary(policy, tier), tier)
        assert tiers_of(p)[1:] == list(policy.tiers.tiers[tier].fallback)
        assert f"code/{complexity}" in p.reason and f"-> {tier}" in p.reason


def test_by_complexity_without_classification_goes_to_default_tier(tmp_path):
    policy = load(
        tmp_path,
        classifier_yaml=CLASSIFIER_SKEWED,
        rules_yaml="rules:\n  - name: triage\n    then: {tier: by_complexity, fallback: [haiku]}\n",
    )
    p = plan(facts(), policy, {}, 0.0)
    assert p.tier == policy.tiers.default_tier == "sonnet"
    assert p.targets == (Target(primary(policy, "sonnet"), "sonnet"), Target(primary(policy, "haiku"), "haiku"))
    assert "not classified -> default tier sonnet" in p.reason


REQUESTED_ONLY = "rules:\n  - name: default\n    then: {tier: requested}\n"


@pytest.mark.parametrize("tier", ["haiku", "sonnet", "opus"])
def test_requested_tier_alias_sends_to_that_tier(tmp_path, tier):
    policy = load(tmp_path, rules_yaml=REQUESTED_ONLY)
    p = plan(facts(tier), policy, {}, 0.0)
    assert p.tier == tier and p.targets[0] == Target(primary(policy, tier), tier)
    assert tiers_of(p)[1:] == list(policy.tiers.tiers[tier].fallback)
    assert f"model names tier {tier}" in p.reason


def test_requested_listed_model_is_tried_first_then_its_tiers_fallbacks(tmp_path):
    policy = load(tmp_path, rules_yaml=REQUESTED_ONLY)
    model = policy.tiers.tiers["opus"].models[2]
    assert model != primary(policy, "opus")
    p = plan(facts(model), policy, {}, 0.0)
    assert p.targets == (
        Target(model, "opus"),
        Target(primary(policy, "sonnet"), "sonnet"),
        Target(primary(policy, "haiku"), "haiku"),
    )
    assert p.tier == "opus" and f"{model} belongs to tier opus" in p.reason


def test_requested_listed_model_with_a_fallback_override(tmp_path):
    policy = load(tmp_path, rules_yaml="rules:\n  - name: default\n    then: {tier: requested, fallback: [haiku]}\n")
    p = plan(facts("claude-sonnet-5-5"), policy, {}, 0.0)
    assert p.targets == (Target("claude-sonnet-5-5", "sonnet"), Target(primary(policy, "haiku"), "haiku"))


def test_requested_unknown_model_is_passed_through_without_fallback(tmp_path):
    policy = load(tmp_path, rules_yaml="rules:\n  - name: default\n    then: {tier: requested, fallback: [haiku]}\n")
    p = plan(facts("claude-future-9"), policy, {}, 0.0)
    assert p.targets == (Target("claude-future-9", None),)
    assert p.tier is None and "not in the tier table" in p.reason and "no fallback" in p.reason


def test_requested_auto_means_by_complexity(tmp_path):
    policy = load(tmp_path, classifier_yaml=CLASSIFIER_SKEWED, rules_yaml=REQUESTED_ONLY)
    assert plan(facts(classification=cls(complexity="medium")), policy, {}, 0.0).tier == "opus"
    assert plan(facts(classification=cls(complexity="high")), policy, {}, 0.0).tier == "haiku"
    unclassified = plan(facts(), policy, {}, 0.0)
    assert unclassified.tier == "sonnet" and "not classified" in unclassified.reason


def test_floor_removes_lower_tiers(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: haiku, floor: sonnet}"))
    p = plan(facts(hint="x"), policy, {}, 0.0)
    # haiku -> [sonnet, opus]: haiku is below the floor and is dropped
    assert tiers_of(p) == ["sonnet", "opus"] and p.tier == "sonnet"


def test_floor_keeps_an_opus_chain_off_haiku(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, floor: sonnet}"))
    assert tiers_of(plan(facts(hint="x"), policy, {}, 0.0)) == ["opus", "sonnet"]


def test_everything_below_the_floor_moves_the_plan_to_the_floor_tier(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: haiku, fallback: [], floor: opus}"))
    p = plan(facts(hint="x"), policy, {}, 0.0)
    assert p.targets == (Target(primary(policy, "opus"), "opus"),)
    assert p.tier == "opus" and "moved it to opus" in p.reason


def test_requested_below_the_floor_moves_to_the_floor(tmp_path):
    policy = load(tmp_path, rules_yaml="rules:\n  - name: default\n    then: {tier: requested, fallback: [], floor: sonnet}\n")
    p = plan(facts("claude-haiku-5-5"), policy, {}, 0.0)
    assert p.targets == (Target(primary(policy, "sonnet"), "sonnet"),)
    # A model outside the table has no rank: a floor does not let it through; the floor tier answers.
    p = plan(facts("claude-future-9"), policy, {}, 0.0)
    assert p.targets == (Target(primary(policy, "sonnet"), "sonnet"),)


def test_cap_removes_higher_tiers(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, cap: sonnet}"))
    p = plan(facts(hint="x"), policy, {}, 0.0)
    assert tiers_of(p) == ["sonnet", "haiku"] and p.tier == "sonnet"


def test_everything_above_the_cap_moves_the_plan_to_the_cap_tier(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, fallback: [], cap: haiku}"))
    p = plan(facts(hint="x"), policy, {}, 0.0)
    assert p.targets == (Target(primary(policy, "haiku"), "haiku"),) and "moved it to haiku" in p.reason


def test_floor_and_cap_together_pin_a_band(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, floor: sonnet, cap: sonnet}"))
    assert tiers_of(plan(facts(hint="x"), policy, {}, 0.0)) == ["sonnet"]
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: haiku, floor: haiku, cap: sonnet}"))
    assert tiers_of(plan(facts(hint="x"), policy, {}, 0.0)) == ["haiku", "sonnet"]


@pytest.mark.parametrize("then, expected", [("{tier: opus, max_retry_wait_seconds: 0.5}", 0.5), ("{tier: opus, max_retry_wait_seconds: 0}", 0.0), ("{tier: opus}", None)])
def test_max_retry_wait_seconds_flows_into_the_plan(tmp_path, then, expected):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", then))
    p = plan(facts(hint="x"), policy, {}, 0.0)
    assert p.max_retry_wait_seconds == (policy.tiers.max_retry_wait_seconds if expected is None else expected)
    assert policy.tiers.max_retry_wait_seconds == 5


def test_cooling_models_are_moved_aside_not_dropped(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus}"))
    opus = primary(policy, "opus")
    p = plan(facts(hint="x"), policy, {opus: 10.0}, 5.0)
    assert opus not in models(p) and [t.model for t in p.cooling] == [opus] and p.tier == "opus"
    assert models(plan(facts(hint="x"), policy, {opus: 10.0}, 10.0))[0] == opus


TENANTS = f"""
tenants:
  acme:
    keys: ['{key_hash("acme-key")}']
    allowed_tiers: [haiku, sonnet]
    rules:
      - name: acme-code
        when: {{category: [code]}}
        then: {{tier: haiku, fallback: []}}
      - name: acme-stream
        when: {{stream: true}}
        then: {{tier: sonnet}}
  globex:
    keys: ['{key_hash("globex-key")}']
"""


def tenant_policy(tmp_path: Path, rules: str = REQUESTED_ONLY) -> Policy:
    return load(tmp_path, tenants_yaml=TENANTS, rules_yaml=rules)


def test_tenant_allowed_tiers_filter_the_chain(tmp_path):
    policy = tenant_policy(tmp_path)
    acme = policy.tenants.tenants["acme"]
    p = plan(facts("opus", tenant="acme"), policy, {}, 0.0, tenant=acme)
    assert p.rule == "default" and tiers_of(p) == ["sonnet", "haiku"]
    # globex lists no allowed tiers: every tier
    globex = policy.tenants.tenants["globex"]
    assert tiers_of(plan(facts("opus", tenant="globex"), policy, {}, 0.0, tenant=globex)) == ["opus", "sonnet", "haiku"]


def test_tenant_allowed_tiers_leaving_nothing_is_a_403(tmp_path):
    policy = tenant_policy(tmp_path, probe_rules("{model: [opus]}", "{tier: opus, fallback: []}"))
    acme = policy.tenants.tenants["acme"]
    with pytest.raises(NoAllowedTarget) as info:
        plan(facts("opus", tenant="acme"), policy, {}, 0.0, tenant=acme)
    assert info.value.status == 403 and "probe" in info.value.message


def test_unknown_model_is_refused_for_a_tenant_restricted_to_tiers(tmp_path):
    policy = tenant_policy(tmp_path)
    with pytest.raises(NoAllowedTarget):
        plan(facts("claude-future-9", tenant="acme"), policy, {}, 0.0, tenant=policy.tenants.tenants["acme"])


def test_tenant_rules_are_evaluated_before_global_rules(tmp_path):
    policy = tenant_policy(tmp_path, probe_rules("{category: [code]}", "{tier: opus}"))
    acme = policy.tenants.tenants["acme"]
    p = plan(facts(tenant="acme", classification=cls("code")), policy, {}, 0.0, tenant=acme)
    assert p.rule == "acme/acme-code" and p.targets == (Target(primary(policy, "haiku"), "haiku"),)
    assert p.skipped == ()
    assert p.origin == f"{tmp_path / 'policies' / 'tenants.yaml'}:{line_of(TENANTS, '- name: acme-code')}"
    # a tenant rule that does not hold falls through to the next tenant rule, then to the global rules
    p = plan(facts(tenant="acme", stream=True, classification=cls("math")), policy, {}, 0.0, tenant=acme)
    assert p.rule == "acme/acme-stream" and p.origin.endswith(f"tenants.yaml:{line_of(TENANTS, '- name: acme-stream')}")
    p = plan(facts(tenant="acme", classification=cls("math")), policy, {}, 0.0, tenant=acme)
    assert p.rule == "default"
    assert [k for k, _ in p.skipped] == ["acme/acme-code", "acme/acme-stream", "probe"]
    assert p.skipped[0] == ("acme/acme-code", "category math not in ['code']")
    # another tenant never sees acme's rules
    globex = policy.tenants.tenants["globex"]
    p = plan(facts(tenant="globex", classification=cls("code")), policy, {}, 0.0, tenant=globex)
    assert p.rule == "probe" and p.tier == "opus"
    assert set(policy.origins) == {"probe", "default", "acme/acme-code", "acme/acme-stream"}


def test_budget_tier_caps_the_plan(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, floor: sonnet}"))
    p = plan(facts(hint="x"), policy, {}, 0.0, budget_tier="haiku")
    # downgrade: nothing above haiku may answer (the rule's floor gives way to the budget)
    assert tiers_of(p) == ["haiku"] and "budget" in p.reason
    policy = load(tmp_path, rules_yaml=REQUESTED_ONLY)
    assert tiers_of(plan(facts("opus"), policy, {}, 0.0, budget_tier="sonnet")) == ["sonnet", "haiku"]
    assert tiers_of(plan(facts("haiku"), policy, {}, 0.0, budget_tier="sonnet")) == ["haiku", "sonnet"]


def test_budget_tier_never_loosens_the_rules_own_cap(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, cap: haiku}"))
    assert tiers_of(plan(facts(hint="x"), policy, {}, 0.0)) == ["haiku"]
    assert tiers_of(plan(facts(hint="x"), policy, {}, 0.0, budget_tier="sonnet")) == ["haiku"]


def test_budget_tier_at_or_above_the_floor_keeps_the_floor(tmp_path):
    policy = load(tmp_path, rules_yaml=probe_rules("{hint: [x]}", "{tier: opus, floor: sonnet}"))
    assert tiers_of(plan(facts(hint="x"), policy, {}, 0.0)) == ["opus", "sonnet"]
    assert tiers_of(plan(facts(hint="x"), policy, {}, 0.0, budget_tier="sonnet")) == ["sonnet"]


def test_origin_of_the_builtin_default_rule_without_rules_yaml(tmp_path):
    policy = load(tmp_path)
    assert [r.name for r in policy.rules] == ["default"] and policy.origins == {"default": "<built-in>"}
    p = plan(facts("opus"), policy, {}, 0.0)
    assert p.rule == "default" and p.origin == "<built-in>" and p.tier == "opus"


def test_origin_of_the_builtin_default_rule_with_an_empty_rules_yaml(tmp_path):
    policy = load(tmp_path, rules_yaml="# no rules yet\n")
    assert policy.origins == {"default": "<built-in>"}


# ---------------------------------------------------------------------------------------------------------
# 3. Validation errors: file, line, message, hint

UNKNOWN_KEY_HINT = "check the spelling"


def test_unknown_key_in_when(tmp_path):
    rules = """
    rules:
      - name: typo
        when:
          model: [auto]
          categroy: [code]
        then: {tier: opus}
      - name: default
        then: {tier: requested}
    """
    error = fail(tmp_path, {"rules.yaml": rules})
    p = only_problem(error, "rules.yaml", line_of(rules, "categroy"), "unknown field `categroy`")
    assert UNKNOWN_KEY_HINT in p.hint


def test_unknown_key_in_then(tmp_path):
    rules = """
    rules:
      - name: typo
        when: {tools: true}
        then:
          tier: opus
          flor: sonnet
      - name: default
        then: {tier: requested}
    """
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "flor:"), "`flor`")
    assert UNKNOWN_KEY_HINT in p.hint


def test_unknown_key_in_a_range(tmp_path):
    rules = """
    rules:
      - name: typo
        when:
          difficulty: {min: 0.2,
                       mx: 0.9}
        then: {tier: opus}
      - name: default
        then: {tier: requested}
    """
    only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "mx:"), "`mx`")


def test_unknown_key_in_a_rule(tmp_path):
    rules = """
    rules:
      - name: default
        descripton: everything
        then: {tier: requested}
    """
    only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "descripton"), "`descripton`")


@pytest.mark.parametrize(
    "file, text, typo",
    [
        ("rules.yaml", "rules:\n  - name: default\n    then: {tier: requested}\nrule_order: first\n", "rule_order"),
        ("classifier.yaml", "model: triage-local-v1\nconfidence_treshold: 0.4\n", "confidence_treshold"),
        ("classifier.yaml", "haiku:\n  enabled: true\n  deadline: 2\n", "deadline"),
        ("tenants.yaml", "open_mod: true\n", "open_mod"),
        ("tiers.yaml", None, "default_teir"),
    ],
)
def test_unknown_key_at_the_top_of_each_file(tmp_path, file, text, typo):
    if file == "tiers.yaml":
        text = (POLICIES / "tiers.yaml").read_text() + "\ndefault_teir: opus\n"
    p = only_problem(fail(tmp_path, {file: text}), file, line_of(text, typo + ":"), f"`{typo}`")
    assert UNKNOWN_KEY_HINT in p.hint


def test_wrong_value_type_is_positioned_and_hinted(tmp_path):
    rules = """
    rules:
      - name: default
        when:
          tools: "maybe"
        then: {tier: requested}
    """
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "tools:"), "Expected `bool | null`, got `str`")
    assert "type" in p.hint


TIERS_WITH_TYPO_IN_A_TIER = """
default_tier: sonnet
tiers:
  haiku:
    models: [claude-haiku-4-5]
  sonnet:
    models: [claude-sonnet-4-6]
    fallbak: [haiku]
"""


def test_unknown_key_inside_a_tier_is_reported_in_tiers_yaml(tmp_path):
    error = fail(tmp_path, {"tiers.yaml": TIERS_WITH_TYPO_IN_A_TIER})
    assert len(error.problems) == 1 and Path(error.problems[0].position.file).name == "tiers.yaml"
    assert "`fallbak`" in error.problems[0].message and UNKNOWN_KEY_HINT in error.problems[0].hint


def test_unknown_key_inside_a_tier_points_at_the_typo_line(tmp_path):
    error = fail(tmp_path, {"tiers.yaml": TIERS_WITH_TYPO_IN_A_TIER})
    only_problem(error, "tiers.yaml", line_of(TIERS_WITH_TYPO_IN_A_TIER, "fallbak"), "`fallbak`")


def test_unknown_key_inside_a_tenant_points_at_the_typo_line(tmp_path):
    tenants = f"""
    tenants:
      acme:
        keys: ['{key_hash("k")}']
        alowed_tiers: [haiku]
    """
    only_problem(fail(tmp_path, {"tenants.yaml": tenants}), "tenants.yaml", line_of(tenants, "alowed_tiers"), "`alowed_tiers`")


def test_unknown_key_in_a_tenant_rule_points_at_the_typo_line(tmp_path):
    tenants = f"""
    tenants:
      acme:
        keys: ['{key_hash("k")}']
        rules:
          - name: r
            when: {{hnit: [cheap]}}
            then: {{tier: haiku}}
    """
    only_problem(fail(tmp_path, {"tenants.yaml": tenants}), "tenants.yaml", line_of(tenants, "hnit"), "`hnit`")


def test_unknown_key_in_a_model_entry_points_at_the_typo_line(tmp_path):
    tiers = """
    default_tier: haiku
    tiers:
      haiku:
        models: [claude-haiku-4-5]
    models:
      claude-haiku-4-5: {inptu: 1, output: 5}
    """
    only_problem(fail(tmp_path, {"tiers.yaml": tiers}), "tiers.yaml", line_of(tiers, "inptu"), "`inptu`")


UNKNOWN_TIER_RULES = """
rules:
  - name: t
    when: {hint: [a]}
    then: {tier: platinum}
  - name: f
    when: {hint: [b]}
    then: {tier: opus, fallback: [sonnet, gold]}
  - name: fl
    when: {hint: [c]}
    then: {tier: opus, floor: bronze}
  - name: cp
    when: {hint: [d]}
    then: {tier: opus, cap: silver}
  - name: default
    then: {tier: requested}
"""


@pytest.mark.parametrize(
    "needle, name", [("platinum", "platinum"), ("gold", "gold"), ("bronze", "bronze"), ("silver", "silver")]
)
def test_unknown_tier_in_a_rules_action(tmp_path, needle, name):
    error = fail(tmp_path, {"rules.yaml": UNKNOWN_TIER_RULES})
    assert len(error.problems) == 4  # every unknown tier, not only the first
    p = problem_at(error, "rules.yaml", line_of(UNKNOWN_TIER_RULES, needle), f"unknown tier {name!r}")
    assert "haiku" in p.hint and "sonnet" in p.hint and "opus" in p.hint
    if name == "platinum":  # then.tier may also name the two keywords
        assert "requested" in p.hint and "by_complexity" in p.hint


def test_then_tier_accepts_the_keywords_and_every_tier(tmp_path):
    rules = "rules:\n" + "".join(
        f"  - name: r{i}\n    when: {{hint: [h{i}]}}\n    then: {{tier: {t}}}\n"
        for i, t in enumerate(["haiku", "sonnet", "opus", "by_complexity"])
    ) + "  - name: default\n    then: {tier: requested}\n"
    assert len(load(tmp_path, rules_yaml=rules).rules) == 5


def test_unknown_tier_in_tenant_allowed_tiers_budget_and_tenant_rules(tmp_path):
    tenants = f"""
    tenants:
      acme:
        keys: ['{key_hash("k")}']
        allowed_tiers: [haiku, sonet]
        budget: {{monthly_usd: 10, on_exceeded: downgrade, downgrade_tier: hiaku}}
        rules:
          - name: r
            when: {{hint: [x]}}
            then: {{tier: opuss}}
    """
    error = fail(tmp_path, {"tenants.yaml": tenants})
    assert len(error.problems) == 3
    problem_at(error, "tenants.yaml", line_of(tenants, "sonet"), "unknown tier 'sonet'")
    problem_at(error, "tenants.yaml", line_of(tenants, "hiaku"), "unknown tier 'hiaku'")
    problem_at(error, "tenants.yaml", line_of(tenants, "opuss"), "unknown tier 'opuss'")


def test_downgrade_without_a_downgrade_tier(tmp_path):
    tenants = f"""
    tenants:
      acme:
        keys: ['{key_hash("k")}']
        budget:
          monthly_usd: 10
          on_exceeded: downgrade
    """
    only_problem(fail(tmp_path, {"tenants.yaml": tenants}), "tenants.yaml", line_of(tenants, "budget:"), "downgrade needs downgrade_tier")


def test_unknown_budget_behaviour(tmp_path):
    tenants = f"""
    tenants:
      acme:
        keys: ['{key_hash("k")}']
        budget: {{monthly_usd: 10,
                  on_exceeded: shrug}}
    """
    p = only_problem(fail(tmp_path, {"tenants.yaml": tenants}), "tenants.yaml", line_of(tenants, "shrug"), "unknown behaviour 'shrug'")
    assert p.hint == "reject or downgrade"


def test_unknown_tier_in_classifier_complexity_tiers(tmp_path):
    classifier = """
    complexity_tiers:
      low: haiku
      medium: sonnett
      high: opus
    """
    p = only_problem(fail(tmp_path, {"classifier.yaml": classifier}), "classifier.yaml", line_of(classifier, "sonnett"), "unknown tier 'sonnett'")
    assert "sonnet" in p.hint


def test_complexity_tiers_must_map_exactly_the_three_complexities(tmp_path):
    classifier = """
    model: triage-local-v1
    complexity_tiers: {low: haiku, medium: sonnet, hgh: opus}
    """
    only_problem(fail(tmp_path, {"classifier.yaml": classifier}), "classifier.yaml", line_of(classifier, "complexity_tiers"), "low, medium and high")


def test_classifier_numbers_are_checked(tmp_path):
    classifier = """
    confidence_threshold: 1.5
    haiku:
      deadline_seconds: 0
      max_tokens: -1
    """
    error = fail(tmp_path, {"classifier.yaml": classifier})
    assert len(error.problems) == 3
    problem_at(error, "classifier.yaml", line_of(classifier, "confidence_threshold"), "outside [0, 1]")
    problem_at(error, "classifier.yaml", line_of(classifier, "deadline_seconds"), "must be > 0")
    problem_at(error, "classifier.yaml", line_of(classifier, "max_tokens"), "must be > 0")


BAD_TIERS = """
default_tier: gold
max_retry_wait_seconds: -1
tiers:
  haiku:
    models: [claude-haiku-4-5]
    fallback: [sonnet, diamond]
  sonnet:
    models: [claude-sonnet-4-6, claude-haiku-4-5]
    fallback: [sonnet, haiku, haiku]
  auto:
    models: [claude-opus-4-8]
models:
  claude-haiku-4-5: {input: 1, output: 5}
  claude-opus-4-8: {input: 5, output: 25}
  claude-opus-9-9: {input: -5, output: 25}
"""


@pytest.mark.parametrize(
    "needle, occurrence, fragment",
    [
        ("default_tier", 1, "unknown tier 'gold'"),
        ("max_retry_wait_seconds", 1, "max_retry_wait_seconds must be >= 0"),
        ("diamond", 1, "unknown tier 'diamond'"),
        ("fallback: [sonnet, haiku, haiku]", 1, "lists itself as a fallback"),
        ("fallback: [sonnet, haiku, haiku]", 1, "repeats a tier in its fallback list"),
        ("models: [claude-sonnet-4-6, claude-haiku-4-5]", 1, "'claude-haiku-4-5' is listed by tiers 'haiku' and 'sonnet'"),
        ("models: [claude-sonnet-4-6, claude-haiku-4-5]", 1, "model 'claude-sonnet-4-6' has no entry under 'models'"),
        ("auto:", 1, "tier name 'auto' is reserved"),
        ("claude-opus-9-9", 1, "model 'claude-opus-9-9' is not in any tier"),
        ("claude-opus-9-9", 1, "negative price -5"),
    ],
)
def test_tier_table_problems(tmp_path, needle, occurrence, fragment):
    error = fail(tmp_path, {"tiers.yaml": BAD_TIERS})
    assert len(error.problems) == 10, "\n".join(map(str, error.problems))
    problem_at(error, "tiers.yaml", line_of(BAD_TIERS, needle, occurrence), fragment)


def test_model_without_a_models_entry_is_reported_on_its_own(tmp_path):
    shipped = (POLICIES / "tiers.yaml").read_text()
    tiers = shipped.replace("claude-haiku-4-5, claude-haiku-5-5", "claude-haiku-4-5, claude-haiku-6-0")
    assert tiers != shipped
    error = fail(tmp_path, {"tiers.yaml": tiers})
    # claude-haiku-5-5, no longer listed by the tier, still belongs to it through its family (haiku).
    assert len(error.problems) == 1
    p = problem_at(error, "tiers.yaml", line_of(tiers, "claude-haiku-6-0"), "model 'claude-haiku-6-0' has no entry under 'models'")
    assert "prices" in p.hint


def test_duplicate_rule_names(tmp_path):
    rules = """
    rules:
      - name: same
        when: {tools: true}
        then: {tier: opus}
      - name: same
        when: {images: true}
        then: {tier: opus}
      - name: default
        then: {tier: requested}
    """
    only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "- name: same", 2), "duplicate rule name 'same' (also rule 1)")


def test_duplicate_rule_names_within_a_tenant(tmp_path):
    tenants = f"""
    tenants:
      acme:
        keys: ['{key_hash("k")}']
        rules:
          - name: same
            when: {{tools: true}}
            then: {{tier: opus}}
          - name: same
            when: {{images: true}}
            then: {{tier: opus}}
    """
    only_problem(fail(tmp_path, {"tenants.yaml": tenants}), "tenants.yaml", line_of(tenants, "- name: same", 2), "duplicate rule name 'same'")


@pytest.mark.parametrize(
    "file, text, key",
    [
        ("rules.yaml", "rules:\n  - name: a\n    then: {tier: haiku}\n    then: {tier: opus}\n", "then"),
        ("rules.yaml", "rules:\n  - name: default\n    when:\n      tools: true\n      tools: false\n    then: {tier: opus}\n", "tools"),
        ("classifier.yaml", "model: a\nconfidence_threshold: 0.5\nmodel: b\n", "model"),
        ("tiers.yaml", "default_tier: haiku\ntiers:\n  haiku: {models: [claude-haiku-4-5]}\n  haiku: {models: [claude-haiku-5-5]}\n", "haiku"),
    ],
)
def test_duplicate_yaml_keys(tmp_path, file, text, key):
    p = only_problem(fail(tmp_path, {file: text}), file, line_of(text, f"{key}:", 2), f"duplicate key {key!r}")
    assert p.hint == "each key may appear once"


def test_unreachable_rule_after_a_catch_all(tmp_path):
    rules = """
    rules:
      - name: everything
        then: {tier: sonnet}
      - name: late
        when: {tools: true}
        then: {tier: opus}
      - name: default
        when: {images: true}
        then: {tier: requested}
    """
    error = fail(tmp_path, {"rules.yaml": rules})
    p = problem_at(error, "rules.yaml", line_of(rules, "- name: late"), "'late' is unreachable", "'everything'")
    assert "move it above" in p.hint
    problem_at(error, "rules.yaml", line_of(rules, "- name: default"), "'default' is unreachable")
    # Every request already matches 'everything': the unreachable rules are the problem, not a missing default.
    assert len(error.problems) == 2


def test_two_catch_alls_report_only_the_unreachable_one(tmp_path):
    rules = """
    rules:
      - name: everything
        then: {tier: sonnet}
      - name: default
        then: {tier: requested}
    """
    only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "- name: default"), "unreachable")


def test_unreachable_rule_with_the_same_conditions_as_an_earlier_one(tmp_path):
    rules = """
    rules:
      - name: first
        when: {tools: true, category: [code]}
        then: {tier: opus}
      - name: other
        when: {tools: true}
        then: {tier: sonnet}
      - name: copy
        when:
          category: [code]
          tools: true
        then: {tier: haiku}
      - name: default
        then: {tier: requested}
    """
    error = fail(tmp_path, {"rules.yaml": rules})
    only_problem(error, "rules.yaml", line_of(rules, "- name: copy"), "'copy' is unreachable", "same conditions")


def test_missing_default_rule(tmp_path):
    rules = """
    # no catch-all
    rules:
      - name: only-tools
        when: {tools: true}
        then: {tier: opus}
    """
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "rules:"), "no default rule")
    assert "name: default" in p.hint


def test_tenant_rules_need_no_default(tmp_path):
    policy = tenant_policy(tmp_path)
    assert [r.name for r in policy.tenants.tenants["acme"].rules] == ["acme-code", "acme-stream"]


def test_bad_regex(tmp_path):
    rules = """
    rules:
      - name: re
        when:
          model_regex: 'claude-(opus'
        then: {tier: opus}
      - name: default
        then: {tier: requested}
    """
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "model_regex"), "bad regular expression")
    assert "whole model id" in p.hint


@pytest.mark.parametrize("field", ["difficulty", "confidence", "input_tokens", "max_tokens"])
def test_impossible_range(tmp_path, field):
    low, high = (0.9, 0.1) if field in ("difficulty", "confidence") else (5000, 10)
    rules = f"""
    rules:
      - name: r
        when:
          tools: true
          {field}: {{min: {low}, max: {high}}}
        then: {{tier: opus}}
      - name: default
        then: {{tier: requested}}
    """
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, f"{field}:"), "impossible range", f"min {float(low)} > max {float(high)}")
    assert p.hint == "swap min and max"


@pytest.mark.parametrize("field, bounds, bad", [("difficulty", "{max: 1.5}", "1.5"), ("confidence", "{min: -0.1}", "-0.1"), ("difficulty", "{min: 0, max: 1}", None)])
def test_score_ranges_must_be_within_0_and_1(tmp_path, field, bounds, bad):
    rules = f"""
    rules:
      - name: r
        when:
          {field}: {bounds}
        then: {{tier: opus}}
      - name: default
        then: {{tier: requested}}
    """
    if bad is None:
        load(tmp_path, rules_yaml=rules)
        return
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, f"{field}:"), f"{bad} is outside [0, 1]")
    assert "between 0 and 1" in p.hint


def test_negative_token_range_is_refused(tmp_path):
    rules = """
    rules:
      - name: r
        when:
          input_tokens: {min: -5}
        then: {tier: opus}
      - name: default
        then: {tier: requested}
    """
    only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "input_tokens"), "-5 is negative")


def test_negative_token_range_has_a_readable_message_and_hint(tmp_path):
    rules = """
    rules:
      - name: r
        when:
          max_tokens: {min: -5}
        then: {tier: opus}
      - name: default
        then: {tier: requested}
    """
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "max_tokens"), "-5")
    assert "None" not in p.message and "score" not in p.hint


def test_negative_max_retry_wait_in_a_rule(tmp_path):
    rules = """
    rules:
      - name: default
        then:
          tier: requested
          max_retry_wait_seconds: -1
    """
    only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "max_retry_wait_seconds"), "must be >= 0")


def test_floor_above_cap(tmp_path):
    rules = """
    rules:
      - name: band
        when: {tools: true}
        then:
          tier: sonnet
          floor: opus
          cap: haiku
      - name: default
        then: {tier: requested}
    """
    p = only_problem(fail(tmp_path, {"rules.yaml": rules}), "rules.yaml", line_of(rules, "floor: opus"), "floor 'opus' is above cap 'haiku'")
    assert "order" in p.hint


def test_unknown_category_and_complexity_values(tmp_path):
    rules = """
    rules:
      - name: r
        when:
          category: [code, poetry]
          complexity: [extreme]
        then: {tier: opus}
      - name: default
        then: {tier: requested}
    """
    error = fail(tmp_path, {"rules.yaml": rules})
    assert len(error.problems) == 2
    p = problem_at(error, "rules.yaml", line_of(rules, "poetry"), "unknown category 'poetry'")
    assert all(c in p.hint for c in CATEGORIES)
    p = problem_at(error, "rules.yaml", line_of(rules, "extreme"), "unknown complexity 'extreme'")
    assert p.hint == "low, medium or high"


def test_budget_and_key_problems(tmp_path):
    shared = key_hash("shared-key")
    tenants = f"""
    tenants:
      acme:
        keys:
          - '{shared}'
          - sk-plaintext-key
          - 'sha256:{"AB" * 32}'
          - 'sha256:abc'
        budget: {{monthly_usd: -1}}
        rate_limit: {{requests_per_minute: 0}}
      globex:
        keys: ['{shared}']
      initech:
        keys: []
    """
    error = fail(tmp_path, {"tenants.yaml": tenants})
    assert len(error.problems) == 7, "\n".join(map(str, error.problems))
    for needle in ("sk-plaintext-key", "AB" * 32, "sha256:abc'"):
        p = problem_at(error, "tenants.yaml", line_of(tenants, needle), "keys must be stored hashed as sha256:<64 hex>")
        assert "hash-key" in p.hint
    problem_at(error, "tenants.yaml", line_of(tenants, "monthly_usd"), "negative budget -1")
    problem_at(error, "tenants.yaml", line_of(tenants, "requests_per_minute"), "requests_per_minute must be > 0")
    problem_at(error, "tenants.yaml", line_of(tenants, shared, 2), "key hash also belongs to tenant 'acme'")
    problem_at(error, "tenants.yaml", line_of(tenants, "keys: []"), "tenant 'initech' has no keys")


def test_unknown_extra_yaml_files_in_the_directory(tmp_path):
    error = fail(tmp_path, {"rules.yaml": REQUESTED_ONLY, "rule.yaml": REQUESTED_ONLY, "tenants.yml": "tenants: {}\n"})
    assert len(error.problems) == 2
    p = problem_at(error, "rule.yaml", 1, "unknown policy file 'rule.yaml'")
    assert "rules.yaml" in p.hint and "tiers.yaml" in p.hint
    problem_at(error, "tenants.yml", 1, "unknown policy file 'tenants.yml'")
    # other files (notes, backups without a yaml suffix) are not policy files
    (tmp_path / "policies" / "rule.yaml").unlink()
    (tmp_path / "policies" / "tenants.yml").unlink()
    (tmp_path / "policies" / "NOTES.md").write_text("ops notes\n")
    load_policy(tmp_path / "policies")


def test_missing_tiers_yaml(tmp_path):
    error = fail(tmp_path, {"rules.yaml": REQUESTED_ONLY}, tiers=False)
    only_problem(error, "tiers.yaml", 1, "missing", "tier table is required")


def test_missing_directory(tmp_path):
    with pytest.raises(PolicyError, match="policy directory does not exist"):
        load_policy(tmp_path / "nowhere")


@pytest.mark.parametrize("text", ["", "# tiers to come\n"])
def test_empty_tiers_yaml_names_the_file(tmp_path, text):
    error = fail(tmp_path, {"tiers.yaml": text})
    assert "tiers.yaml:1:" in str(error)


@pytest.mark.parametrize(
    "file, text, line",
    [
        ("rules.yaml", "rules:\n  - name: a\n    then: {tier: haiku\n  - name: b\n", 4),
        ("rules.yaml", "rules:\n  - name: a\n     then: {tier: haiku}\n", 3),
        ("tenants.yaml", "tenants:\n  acme:\n    keys: ['x'\n", 4),
        ("classifier.yaml", "model: triage\nconfidence_threshold: [0.5\nhaiku: {}\n", 3),
        ("tiers.yaml", "default_tier: haiku\ntiers:\n\thaiku: {}\n", 3),
    ],
)
def test_invalid_yaml_syntax_names_the_line(tmp_path, file, text, line):
    p = only_problem(fail(tmp_path, {file: text}), file, line, "not valid YAML")
    assert len(p.message) > len("not valid YAML: ")


def test_several_problems_in_several_files_are_all_reported(tmp_path):
    rules = """
    rules:
      - name: a
        when: {category: [poetry]}
        then: {tier: platinum}
      - name: a
        when: {tools: true}
        then: {tier: opus, floor: opus, cap: haiku}
    """
    tenants = """
    tenants:
      acme:
        keys: [plaintext]
        allowed_tiers: [gold]
    """
    classifier = """
    complexity_tiers: {low: haiku, medium: silver, high: opus}
    """
    error = fail(tmp_path, {"rules.yaml": rules, "tenants.yaml": tenants, "classifier.yaml": classifier})
    problem_at(error, "rules.yaml", line_of(rules, "poetry"), "unknown category 'poetry'")
    problem_at(error, "rules.yaml", line_of(rules, "platinum"), "unknown tier 'platinum'")
    problem_at(error, "rules.yaml", line_of(rules, "- name: a", 2), "duplicate rule name 'a'")
    problem_at(error, "rules.yaml", line_of(rules, "floor: opus"), "floor 'opus' is above cap 'haiku'")
    problem_at(error, "rules.yaml", line_of(rules, "rules:"), "no default rule")
    problem_at(error, "tenants.yaml", line_of(tenants, "plaintext"), "hashed")
    problem_at(error, "tenants.yaml", line_of(tenants, "gold"), "unknown tier 'gold'")
    problem_at(error, "classifier.yaml", line_of(classifier, "silver"), "unknown tier 'silver'")
    assert len(error.problems) == 8
    # one line per problem, each "file:line:column: message"
    assert len(str(error).splitlines()) == 8


def test_syntax_and_duplicate_key_problems_in_several_files_are_all_reported(tmp_path):
    error = fail(
        tmp_path,
        {
            "rules.yaml": "rules:\n  - name: a\n    then: {tier: haiku\n",
            "classifier.yaml": "model: a\nmodel: b\nlearning_sink: x\nlearning_sink: y\n",
            "tenants.yaml": "tenants: [\n",
        },
    )
    files = sorted(Path(p.position.file).name for p in error.problems)
    assert files == ["classifier.yaml", "classifier.yaml", "rules.yaml", "tenants.yaml"]
    problem_at(error, "classifier.yaml", 2, "duplicate key 'model'")
    problem_at(error, "classifier.yaml", 4, "duplicate key 'learning_sink'")


def test_decode_problems_in_several_files_are_all_reported(tmp_path):
    error = fail(
        tmp_path,
        {
            "rules.yaml": "rules:\n  - name: default\n    then: {tier: requested, sticky: sometimes}\n",
            "classifier.yaml": "confidence_threshold: high\n",
            "tenants.yaml": "tenants: {}\nopen: true\n",
        },
    )
    assert len(error.problems) == 3
    problem_at(error, "rules.yaml", 3, "Expected `bool`")
    problem_at(error, "classifier.yaml", 1, "Expected `float`")
    problem_at(error, "tenants.yaml", 2, "`open`")


def test_a_typo_in_rules_yaml_does_not_hide_tier_table_problems(tmp_path):
    shipped = (POLICIES / "tiers.yaml").read_text()
    tiers = shipped.replace("default_tier: sonnet", "default_tier: gold")
    assert tiers != shipped
    error = fail(tmp_path, {"tiers.yaml": tiers, "rules.yaml": "rules:\n  - name: default\n    thne: {tier: opus}\n"})
    problem_at(error, "rules.yaml", 3, "`thne`")
    problem_at(error, "tiers.yaml", line_of(tiers, "default_tier"), "unknown tier 'gold'")


# ---------------------------------------------------------------------------------------------------------
# 4. The shipped directory


def test_shipped_policies_load_cleanly(tmp_path):
    policy = load_policy(POLICIES)
    assert len(policy.version) == 12 and int(policy.version, 16) >= 0
    assert policy.rules and policy.rules[-1].when.is_empty(), "the shipped rules end with a catch-all"
    for rule in policy.rules:
        assert policy.origins[rule.name].startswith(str(POLICIES / "rules.yaml") + ":")
    # unclassified auto requests are planned without error by the shipped rules
    p = plan(facts(), policy, {}, 0.0)
    assert p.targets and p.origin != "<built-in>"


def test_version_changes_when_any_file_changes(tmp_path):
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    base = load_policy(copy).version
    assert load_policy(copy).version == base, "same files, same version"
    assert base == load_policy(POLICIES).version, "the version depends on contents, not on the directory"
    for path in sorted(copy.glob("*.yaml")):
        original = path.read_text()
        path.write_text(original + "\n# edited\n")
        assert load_policy(copy).version != base, f"editing {path.name} must change the version"
        path.write_text(original)
        assert load_policy(copy).version == base
    (copy / "tenants.yaml").write_text("open_mode: true\n")
    assert load_policy(copy).version != base, "adding tenants.yaml must change the version"

