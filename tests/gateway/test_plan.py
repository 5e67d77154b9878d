"""plan() is pure: the same view, table and health give the same ordered targets and reason."""

from pathlib import Path

import pytest

from router.classify.schema import Classification
from router.gateway.plan import Target, plan
from router.policy.loader import load_policy
from router.policy.rules import Facts
from router.policy.tiers import deprecated_models

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def policy():
    return load_policy(POLICIES)


@pytest.fixture(scope="module")
def table(policy):
    return policy.tiers


def facts(model, classification=None, **kw):
    values = dict(
        model=model, input_tokens=100, max_tokens=100, tools=False, images=False, documents=False,
        thinking=False, stream=False, classification=classification,
    )
    values.update(kw)
    return Facts(**values)


def cls(category="open_qa", complexity="low"):
    return Classification(
        category=category, complexity=complexity, difficulty=0.5, confidence=0.9, stage="local", scores={category: 1.0}
    )


def models(p):
    return [t.model for t in p.targets]


def test_auto_without_classification_goes_to_default_tier_then_its_fallbacks(policy, table):
    p = plan(facts("auto"), policy, {}, 0.0)
    sonnet = table.tiers["sonnet"]
    assert p.rule == "default" and p.tier == "sonnet" and "not classified" in p.reason
    assert models(p) == [sonnet.primary] + [table.tiers[t].primary for t in sonnet.fallback]
    assert p.origin.endswith("rules.yaml:" + p.origin.rsplit(":", 1)[1])


def test_tier_alias(policy, table):
    p = plan(facts("haiku"), policy, {}, 0.0)
    assert p.rule == "default" and "names tier haiku" in p.reason
    assert p.targets[0] == Target(table.tiers["haiku"].primary, "haiku")


def test_explicit_known_model_is_tried_first_even_when_not_primary(policy, table):
    secondary = table.tiers["opus"].models[1]
    p = plan(facts(secondary), policy, {}, 0.0)
    assert p.targets[0] == Target(secondary, "opus")
    assert p.targets[1].tier == table.tiers["opus"].fallback[0]


def test_unknown_model_passes_through_without_fallback(policy):
    p = plan(facts("claude-future-9"), policy, {}, 0.0)
    assert models(p) == ["claude-future-9"] and p.tier is None and "no fallback" in p.reason


def test_cooling_models_are_skipped_until_their_time(policy, table):
    primary = table.tiers["opus"].primary
    cooling = {primary: 100.0}
    assert primary not in models(plan(facts("opus"), policy, cooling, 99.0))
    assert [t.model for t in plan(facts("opus"), policy, cooling, 99.0).cooling] == [primary]
    assert models(plan(facts("opus"), policy, cooling, 100.0))[0] == primary


def test_same_input_same_plan(policy):
    assert plan(facts("auto"), policy, {"x": 5.0}, 1.0) == plan(facts("auto"), policy, {"x": 5.0}, 1.0)


def test_auto_with_classification_goes_to_the_complexity_tier(policy, table):
    p = plan(facts("auto", cls("open_qa", "medium")), policy, {}, 0.0)
    assert p.rule == "default" and p.tier == "sonnet" and "open_qa/medium" in p.reason
    hard = plan(facts("auto", cls("math", "high")), policy, {}, 0.0)
    assert hard.rule == "hard-reasoning" and hard.tier == "opus"
    assert "haiku" not in [t.tier for t in hard.targets], "the floor keeps Haiku out of the chain"
    assert ("long-context", "input_tokens 100 not in [100000, ]") in hard.skipped
    # A request naming a tier is not re-routed by a classification.
    assert plan(facts("haiku", cls("math", "high")), policy, {}, 0.0).tier == "haiku"


def test_deprecated_models_in_the_table_are_reported(table):
    # The catalogue's own lifecycle first (claude-opus-4-5 is deprecated there), then the SDK's table.
    found = deprecated_models(table, {"claude-opus-4-7": "November 30th, 2027", "claude-2": "gone"})
    assert found == {"claude-opus-4-5": "2027-01-22", "claude-opus-4-7": "November 30th, 2027"}



def test_a_named_cooling_model_is_still_tried_when_nothing_else_is_ready(policy, table):
    # Issue 13, defect 13: a request naming a cooling model got a 429 without any attempt.
    opus = table.tiers["opus"]
    chain = [opus.primary] + [table.tiers[t].primary for t in opus.fallback]
    everything = dict.fromkeys(chain, 100.0)
    p = plan(facts(opus.primary), policy, everything, 50.0)
    assert models(p) == [opus.primary] and opus.primary not in [t.model for t in p.cooling]
    assert "tried anyway" in p.reason
    # Not when another candidate is ready: the fallback answers, as before.
    p = plan(facts(opus.primary), policy, {opus.primary: 100.0}, 50.0)
    assert opus.primary not in models(p) and models(p)
    # A tier name is not a named model: an all-cooling tier chain stays cooling.
    assert models(plan(facts("opus"), policy, everything, 50.0)) == []
    # A model outside the table, cooling after a 429, is still forwarded when named.
    p = plan(facts("claude-experimental-9"), policy, {"claude-experimental-9": 100.0}, 50.0)
    assert models(p) == ["claude-experimental-9"]
