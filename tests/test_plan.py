"""plan() is pure: the same view, table and health give the same ordered targets and reason."""

from pathlib import Path

import pytest

from router.errors import ConfigError
from router.plan import Target, plan
from router.tiers import deprecated_models, load_tiers, parse_tiers
from router.view import RequestView

POLICIES = Path(__file__).resolve().parent.parent / "policies"


@pytest.fixture(scope="module")
def table():
    return load_tiers(POLICIES)


def view(model):
    return RequestView(model=model, messages=[{"role": "user", "content": "hi"}])


def models(p):
    return [t.model for t in p.targets]


def test_auto_goes_to_default_tier_then_its_fallbacks(table):
    p = plan(view("auto"), table, {}, 0.0)
    sonnet = table.tiers["sonnet"]
    assert p.rule == "auto-default" and p.tier == "sonnet"
    assert models(p) == [sonnet.primary] + [table.tiers[t].primary for t in sonnet.fallback]


def test_tier_alias(table):
    p = plan(view("haiku"), table, {}, 0.0)
    assert p.rule == "tier-alias"
    assert p.targets[0] == Target(table.tiers["haiku"].primary, "haiku")


def test_explicit_known_model_is_tried_first_even_when_not_primary(table):
    secondary = table.tiers["opus"].models[1]
    p = plan(view(secondary), table, {}, 0.0)
    assert p.rule == "explicit-model"
    assert p.targets[0] == Target(secondary, "opus")
    assert p.targets[1].tier == table.tiers["opus"].fallback[0]


def test_unknown_model_passes_through_without_fallback(table):
    p = plan(view("claude-future-9"), table, {}, 0.0)
    assert p.rule == "passthrough" and models(p) == ["claude-future-9"] and p.tier is None


def test_cooling_models_are_skipped_until_their_time(table):
    primary = table.tiers["opus"].primary
    cooling = {primary: 100.0}
    assert primary not in models(plan(view("opus"), table, cooling, 99.0))
    assert [t.model for t in plan(view("opus"), table, cooling, 99.0).cooling] == [primary]
    assert models(plan(view("opus"), table, cooling, 100.0))[0] == primary


def test_same_input_same_plan(table):
    assert plan(view("auto"), table, {"x": 5.0}, 1.0) == plan(view("auto"), table, {"x": 5.0}, 1.0)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("tiers: {a: {models: [m1], fallback: [b]}}\ndefault_tier: a\n", "unknown tier 'b'"),
        ("tiers: {a: {models: [m1]}}\ndefault_tier: z\n", "default_tier 'z'"),
        ("tiers: {a: {models: [m1]}, b: {models: [m1]}}\ndefault_tier: a\n", "model 'm1' is listed by tiers"),
        ("tiers: {auto: {models: [m1]}}\ndefault_tier: auto\n", "reserved"),
        ("tiers: {a: {models: [m1], fallbak: []}}\ndefault_tier: a\n", "fallbak"),
        ("tiers: [\n", "not valid YAML"),
    ],
)
def test_tier_table_errors_name_the_file_and_problem(text, fragment):
    with pytest.raises(ConfigError) as info:
        parse_tiers(text, "policies/tiers.yaml")
    assert "policies/tiers.yaml" in str(info.value)
    assert fragment in str(info.value)


def test_deprecated_models_in_the_table_are_reported(table):
    found = deprecated_models(table, {"claude-sonnet-4-5": "November 30th, 2026", "claude-2": "gone"})
    assert found == {"claude-sonnet-4-5": "November 30th, 2026"}


def test_auto_with_classification_goes_to_the_complexity_tier(table):
    from router.classify.schema import Classification

    hard = Classification(
        category="math", complexity="high", difficulty=0.9, confidence=0.8, stage="local", scores={"math": 1.0}
    )
    mapping = {"low": "haiku", "medium": "sonnet", "high": "opus"}
    p = plan(view("auto"), table, {}, 0.0, hard, mapping)
    assert p.rule == "auto-classified" and p.tier == "opus"
    assert p.targets[0] == Target(table.tiers["opus"].primary, "opus")
    assert "math/high" in p.reason and "local" in p.reason
    # A request naming a tier or model is not re-routed by the classification.
    assert plan(view("haiku"), table, {}, 0.0, hard, mapping).tier == "haiku"
