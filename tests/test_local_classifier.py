"""The local classifier: the fast path equals the scikit-learn reference, the artifact loads safely and
checks itself, and whole-conversation features keep a short follow-up at its conversation's weight."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from router.classify.dataset import Row
from router.classify.features import N_FEATURES, featurize, prompt_body
from router.classify.local import DEFAULT_NAME, LocalModel, load, save
from router.classify.schema import CATEGORIES
from router.classify.train import TrainConfig, export_arrays, featurize_matrix, fit
from router.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"

WORDS = {
    "code": "write a python function that parses json and returns a list; fix the bug in this loop",
    "math": "solve for x: 3x + 5 = 20. compute the integral of x^2 and prove the sum formula",
    "open_qa": "what is the capital of france and why did the roman empire fall",
    "creative_writing": "write a short poem about the sea and a story about a dragon",
    "summarization": "summarize the following article in three sentences",
    "chitchat": "hi there how are you doing today, nice to meet you",
}


def tiny_rows() -> list[Row]:
    rows = []
    rng = np.random.default_rng(0)
    for category, text in WORDS.items():
        words = text.split()
        for i in range(40):
            picked = " ".join(rng.choice(words, size=8))
            tier = ("low", "medium", "high")[i % 3]
            rows.append(Row(f"{category}:{i}", "tiny", picked, category, tier, "high", 0.0, "train"))
    return rows


BODIES = [
    prompt_body("write a python function to parse json"),
    prompt_body("summarize this: the sea is large and blue. " * 30),
    {
        "system": "You are a helpful assistant.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "prove the sum formula"}, {"type": "image", "source": {}}]},
            {"role": "assistant", "content": "Here is a plan..."},
            {"role": "user", "content": "yes, go ahead"},
        ],
        "tools": [{"name": "calculator", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    },
    prompt_body("ünïcödé 你好 how are you ```code``` $x^2$ 1. one\n2. two? must include exactly 3 words"),
]


@pytest.fixture(scope="module")
def trained():
    config = TrainConfig(max_iter=200)
    pipeline, med, high = fit(tiny_rows(), config)
    return pipeline, med, high, LocalModel(export_arrays(pipeline, med, high), _meta())


def _meta():
    return {"thresholds": {"medium_at": 0.4, "high_at": 0.7}}


def reference(pipeline, med, high, bodies):
    """What scikit-learn itself computes, through the pipeline's own predict_proba."""
    probs = pipeline.predict_proba(bodies)
    ordered = np.zeros((len(bodies), len(CATEGORIES)))
    for column, name in enumerate(pipeline.named_steps["model"].classes_):
        ordered[:, CATEGORIES.index(name)] = probs[:, column]
    x_cx = sp.hstack([featurize_matrix(bodies), sp.csr_matrix(ordered)], format="csr")
    return ordered, med.predict_proba(x_cx)[:, 1], high.predict_proba(x_cx)[:, 1]


def test_fast_path_equals_the_reference_pipeline(trained):
    pipeline, med, high, model = trained
    ref_probs, ref_med, ref_high = reference(pipeline, med, high, BODIES)
    for i, body in enumerate(BODIES):
        probs, p_med, p_high = model.probabilities(body)
        np.testing.assert_allclose(probs, ref_probs[i], rtol=0, atol=1e-9)
        assert p_med == pytest.approx(ref_med[i], abs=1e-9)
        assert p_high == pytest.approx(ref_high[i], abs=1e-9)
    assert model.classify(BODIES[0]).category == "code"


def test_saved_artifact_round_trips_within_float32(trained, tmp_path):
    pipeline, med, high, model = trained
    meta = {
        **_meta(),
        "feature_version": 1,
        "categories": list(CATEGORIES),
        "n_features": N_FEATURES,
    }
    save(tmp_path, "t", export_arrays(pipeline, med, high), meta)
    loaded = load(tmp_path, "t")
    for body in BODIES:
        a, b = model.probabilities(body), loaded.probabilities(body)
        np.testing.assert_allclose(a[0], b[0], atol=1e-4)
        assert a[1] == pytest.approx(b[1], abs=1e-4)


def test_shipped_model_equals_sklearn_rebuilt_from_its_arrays():
    model = load(MODELS)
    lr = LogisticRegression()
    lr.classes_ = np.array(CATEGORIES)
    lr.coef_ = model.cat_coef
    lr.intercept_ = model.cat_intercept
    x = featurize_matrix(BODIES)
    expected = lr.predict_proba(x)
    for i, body in enumerate(BODIES):
        np.testing.assert_allclose(model.probabilities(body)[0], expected[i], atol=1e-9)


def test_mismatched_artifact_fails_loudly(tmp_path):
    for name in (f"{DEFAULT_NAME}.npz", f"{DEFAULT_NAME}.json"):
        shutil.copy(MODELS / name, tmp_path / name)
    meta_path = tmp_path / f"{DEFAULT_NAME}.json"
    meta = json.loads(meta_path.read_text())
    meta["feature_version"] = 999
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="feature_version 999"):
        load(tmp_path)
    meta["feature_version"] = 1
    meta["categories"] = meta["categories"][::-1]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="label set"):
        load(tmp_path)


def test_artifact_is_never_unpickled(tmp_path):
    """An .npz holding an object array (which needs pickle) is refused, not executed."""
    for name in (f"{DEFAULT_NAME}.npz", f"{DEFAULT_NAME}.json"):
        shutil.copy(MODELS / name, tmp_path / name)
    with np.load(tmp_path / f"{DEFAULT_NAME}.npz") as data:
        arrays = dict(data)
    arrays["cat_coef"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / f"{DEFAULT_NAME}.npz", **arrays)
    with pytest.raises(ValueError, match="pickle"):
        load(tmp_path)


LONG_DESIGN = (
    "Design a distributed rate limiter for a multi-region API gateway. It must enforce per-tenant token "
    "buckets with exactly-once accounting across regions, survive a region partition without double "
    "spending, and keep p99 added latency under 2 ms. Compare a CRDT-based approach with a leader-based "
    "one, prove the bound on over-admission during a partition, and give the data structures and the "
    "failure handling for clock skew."
)


def conversation(last: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": LONG_DESIGN},
            {"role": "assistant", "content": "Here is a plan: 1. token buckets per region 2. gossip 3. proofs. Shall I write it all out?"},
            {"role": "user", "content": last},
        ]
    }


def test_short_follow_up_keeps_its_conversation_weight():
    model = load(MODELS)
    alone = model.classify(prompt_body("yes, go ahead"))
    opener = model.classify(prompt_body(LONG_DESIGN))
    follow_up = model.classify(conversation("yes, go ahead"))
    assert follow_up.difficulty > alone.difficulty + 0.1
    assert follow_up.difficulty >= 0.7 * opener.difficulty
    assert follow_up.category == opener.category
    assert follow_up.complexity != "low" or opener.complexity == "low"


def test_features_are_bounded_for_huge_requests_but_see_their_size():
    import math

    from router.classify.features import DENSE_NAMES, DENSE_WEIGHT, N_HASHED

    huge = prompt_body("token " * 100_000)
    indices, values = featurize(huge)
    assert len(indices) < 20 and max(indices) < N_FEATURES
    size = dict(zip(indices, values))[N_HASHED + DENSE_NAMES.index("log_total_chars")]
    assert size == pytest.approx(math.log1p(600_000) / 12.0 * DENSE_WEIGHT)
