"""The evaluation's figures: rank statistics equal their library definitions, routing curves behave as
RouteLLM's (random routing recovers half the area, an oracle more, ties count as a random order), the
bootstrap interval brackets the margin, and prices come from the tier table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from router.classify.curves import OutcomeSet, apgr, curve_figures, routing_curve, tier_prices
from router.classify.quality import bootstrap_margin, hard_auc, spearman, tier_shares

ROOT = Path(__file__).resolve().parents[2]


def test_rank_statistics_equal_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(1, 9, 400).astype(float)
    s = y + rng.normal(0, 2, 400)
    s[:40] = s[0]  # ties
    assert spearman(y, s) == pytest.approx(spearmanr(y, s)[0], abs=1e-12)
    mask = (y >= 6) | (y <= 3)
    assert hard_auc(y, s) == pytest.approx(roc_auc_score(y[mask] >= 6, s[mask]), abs=1e-12)
    assert hard_auc(np.array([2.0, 3.0]), np.array([1.0, 2.0])) is None
    assert spearman(y, np.ones_like(y)) == 0.0


def outcome(weak, strong) -> OutcomeSet:
    return OutcomeSet(name="t", prompts=["p"] * len(weak), weak=np.array(weak, float), strong=np.array(strong, float), weak_model="w", strong_model="s")


def test_routing_curves_random_oracle_and_ties():
    rng = np.random.default_rng(1)
    weak = rng.integers(0, 2, 2000).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 2000))
    gain = strong - weak
    # A constant score is one tie: the expected random order, a straight line, APGR exactly 0.5.
    assert apgr(np.zeros(2000), weak, strong) == pytest.approx(0.5, abs=1e-12)
    oracle = apgr(gain, weak, strong)
    assert oracle > 0.85 and apgr(-gain, weak, strong) < 0.15
    shares, quality = routing_curve(gain, weak, strong)
    assert shares[0] == 0 and shares[-1] == 1
    assert quality[0] == pytest.approx(weak.mean()) and quality[-1] == pytest.approx(strong.mean())


def test_curve_figures_on_a_worked_example():
    # Four prompts; only the two scored hardest gain from the strong model.
    figures = curve_figures(np.array([4.0, 3.0, 2.0, 1.0]), outcome([0, 0, 1, 1], [1, 1, 1, 1]), 6.0, 18.0)
    assert figures["weak_quality"] == 0.5 and figures["strong_quality"] == 1.0
    assert figures["cpt50"] == pytest.approx(0.25) and figures["cpt80"] == pytest.approx(0.4)
    # 95% of strong quality is 0.95: reached at 45% strong calls; cost 0.45*18 + 0.55*6 = 11.4 of 18.
    assert figures["strong_share_at_95"] == pytest.approx(0.45)
    assert figures["cost_cut_at_95"] == pytest.approx(1 - 11.4 / 18, abs=1e-4)
    assert figures["apgr"] == pytest.approx(0.75)


def test_bootstrap_interval_brackets_the_margin():
    rng = np.random.default_rng(2)
    y = rng.integers(1, 9, 300).astype(float)
    good, bad = y + rng.normal(0, 1, 300), y + rng.normal(0, 4, 300)
    result = bootstrap_margin(spearman, [y], good, bad, n=200)
    low, high = result["ci95"]
    assert low <= result["margin"] <= high and low > 0


def test_prices_come_from_the_tier_table_and_shares_add_up():
    prices = tier_prices(ROOT / "policies" / "tiers.yaml")
    assert prices == {"haiku": 6.0, "sonnet": 18.0, "opus": 30.0}
    shares = tier_shares(np.array([0.1, 0.2, 0.5, 0.9]), 0.3, 0.8)
    assert shares == {"low": 0.5, "medium": 0.25, "high": 0.25}
