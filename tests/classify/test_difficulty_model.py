"""The v2 difficulty model: the fast path equals the scikit-learn reference pipelines, the artifact loads
without pickle and checks itself, the task view leaves the harness out, and the shipped model judges agent
traffic by its task (Claude Code-shaped requests)."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from router.classify import scorer
from router.classify.embedding import WordTable
from router.classify.fit import Pair, TrainConfig, build_model, calibration_map, fit_models, thresholds_for_mix
from router.classify.local import DEFAULT_NAME, load, save_v2
from router.classify.natural import NaturalRow
from router.classify.schema import CATEGORIES
from router.classify.scorer import ScoreModel, calibrate, to_scale, to_unit
from router.classify.signals import DENSE_NAMES, FEATURE_VERSION, signals
from router.classify.turns import task_view
from router.errors import ConfigError
from tests.classify.agent_requests import EASY_ASK, HARD_ASK, SYSTEM_PROMPT, TOOLS, agent_request, follow_up

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
SHIPPED = (MODELS / f"{DEFAULT_NAME}.json").exists()

TEXTS = {
    ("code", 5): "write a python function that parses json files and fixes the bug in this loop with a class",
    ("math", 6): "solve for x and prove the sum formula then compute the integral of x squared step by step",
    ("open_qa", 2): "what is the capital of france and who was the first roman emperor",
    ("creative_writing", 3): "write a short poem about the sea and a story about a dragon",
    ("chitchat", 1): "hi there how are you doing today nice to meet you",
}


def small_table() -> tuple[WordTable, dict[str, np.ndarray]]:
    """A word table over the test vocabulary with seeded random vectors (the real one needs wordllama)."""
    words = sorted({w for text in TEXTS.values() for w in text.split()})
    rng = np.random.default_rng(1)
    hashes = np.array([zlib.crc32(w.encode()) for w in words], dtype=np.uint32)
    order = np.argsort(hashes)
    arrays = {
        "vocab_hashes": hashes[order],
        "vocab_tokens": np.ones(len(words), dtype=np.float32),
        "vocab_vectors": rng.normal(size=(len(words), 8)).astype(np.float16),
    }
    return WordTable(arrays["vocab_hashes"], arrays["vocab_tokens"], arrays["vocab_vectors"]), arrays


def tiny_rows() -> list[NaturalRow]:
    rng = np.random.default_rng(0)
    rows = []
    for (category, level), text in TEXTS.items():
        words = text.split()
        for i in range(30):
            picked = " ".join(rng.choice(words, size=int(rng.integers(4, 14))))
            rows.append(
                NaturalRow(
                    id=f"{category}:{i}", source="tiny", conversation=f"{category}:{i}",
                    body={"messages": [{"role": "user", "content": picked}]}, text=picked, category=category,
                    difficulty=float(level + (i % 3) - 1),
                )
            )
    return rows


BODIES = [
    {"messages": [{"role": "user", "content": "write a python function to parse json"}]},
    {"messages": [{"role": "user", "content": "prove the sum formula " * 40}]},
    {
        "system": "You are a helpful assistant.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "write a story about a dragon and the sea, twelve stanzas"}, {"type": "image", "source": {}}]},
            {"role": "assistant", "content": "Here is a plan..."},
            {"role": "user", "content": "yes, go ahead"},
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    },
    {"messages": [{"role": "user", "content": "ünïcödé 你好 how are you ```code``` $x^2$ 1. one\n2. two? must include"}]},
    {"messages": []},
]


@pytest.fixture(scope="module", params=[(1.0, 1.0), (3.0, 2.0)], ids=["unscaled", "embedding-scaled"])
def trained(request):
    table, table_arrays = small_table()
    # The embedding scales are folded into the exported coefficients: the fast path must still agree.
    scale_category, scale_difficulty = request.param
    config = TrainConfig(max_iter=40, folds=2, embed_scale_category=scale_category, embed_scale_difficulty=scale_difficulty)
    rows = tiny_rows()
    # Benchmark-style difference rows go through the same fit (no intercept on them).
    pairs = [Pair("tiny", TEXTS[("math", 6)], TEXTS[("open_qa", 2)], 1.0), Pair("tiny", TEXTS[("code", 5)], TEXTS[("chitchat", 1)], 0.5)]
    category, difficulty = fit_models(rows, config, table, pairs=pairs)
    model, arrays, metadata = build_model(rows, config, table, table_arrays, {}, pairs=pairs)
    assert metadata["benchmark_pairs"] == {"tiny": 2}
    return category, difficulty, model, arrays, metadata


def test_fast_path_equals_the_reference_pipelines(trained):
    category, difficulty, model, _, _ = trained
    expected_probs = category.predict_proba(BODIES)
    expected_scores = difficulty.predict(BODIES)
    classes = list(category.named_steps["model"].classes_)
    for i, body in enumerate(BODIES):
        probs, score = model.outputs(body)
        for name, p in zip(CATEGORIES, probs):
            want = expected_probs[i, classes.index(name)] if name in classes else 0.0
            assert p == pytest.approx(want, abs=1e-9)
        assert score == pytest.approx(expected_scores[i], abs=1e-9)
    # The fitted model learned something: the code-ish body is code.
    assert model.classify(BODIES[0]).category == "code"
    for body in BODIES:
        _, raw = model.outputs(body)
        assert model.classify(body).difficulty == round(to_unit(model.score(raw)), 6)


def test_the_scale_map_is_strictly_increasing_and_matches_the_label_distribution():
    rng = np.random.default_rng(3)
    labels = rng.choice([1, 2, 3, 4, 5, 6, 7], size=3000, p=[0.08, 0.4, 0.32, 0.13, 0.05, 0.015, 0.005]).astype(float)
    raw = 2.5 + 0.3 * (labels - 2.5) + rng.normal(0, 0.3, labels.size)  # squeezed like a ridge's output
    xs, ys = calibration_map(raw, labels)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    mapped = np.array([calibrate(v, xs.tolist(), ys.tolist()) for v in raw])
    assert np.all(np.diff(mapped[np.argsort(raw)]) >= 0), "order kept"
    # As many requests map to 5 or more as were labelled 5 or more (within a point of share).
    assert abs((mapped >= 4.5).mean() - (labels >= 5).mean()) < 0.01
    assert calibrate(xs[-1] + 2.0, xs.tolist(), ys.tolist()) == pytest.approx(ys[-1] + 2.0)


def test_saved_artifact_loads_without_pickle_and_round_trips_within_float32(trained, tmp_path):
    *_, model, arrays, metadata = trained
    save_v2(tmp_path, "t", arrays, metadata)
    loaded = load(tmp_path, "t")
    assert isinstance(loaded, ScoreModel)
    for body in BODIES:
        (a, sa), (b, sb) = model.outputs(body), loaded.outputs(body)
        np.testing.assert_allclose(a, b, atol=1e-4)
        assert sa == pytest.approx(sb, abs=1e-3)
    with np.load(tmp_path / "t.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_artifact_holding_an_object_array_is_refused(trained, tmp_path):
    *_, arrays, metadata = trained
    save_v2(tmp_path, "t", arrays, metadata)
    with np.load(tmp_path / "t.npz") as data:
        stored = dict(data)
    stored["word_rows"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "t.npz", **stored)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path, "t")


def test_mismatched_artifact_fails_loudly(trained, tmp_path):
    *_, arrays, metadata = trained
    save_v2(tmp_path, "t", arrays, metadata)
    meta = json.loads((tmp_path / "t.json").read_text())
    meta["feature_version"] = FEATURE_VERSION + 1
    (tmp_path / "t.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="feature_version"):
        load(tmp_path, "t")
    meta["feature_version"] = FEATURE_VERSION
    meta["dense_names"] = list(DENSE_NAMES[::-1])
    (tmp_path / "t.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="dense feature names"):
        load(tmp_path, "t")


def test_cut_offs_follow_the_target_mix():
    units = np.linspace(0, 1, 1001)
    cuts = thresholds_for_mix(units, (0.7, 0.22, 0.08))
    assert cuts["medium_at"] == pytest.approx(0.7, abs=1e-3) and cuts["high_at"] == pytest.approx(0.92, abs=1e-3)
    assert to_unit(1.0) == 0.0 and to_unit(10.0) == 1.0 and to_unit(12.0) == 1.0
    assert to_scale(to_unit(4.5)) == pytest.approx(4.5)


# --- the task view ---------------------------------------------------------------------------------


def test_task_view_leaves_the_harness_and_reminders_out():
    view = task_view(agent_request(EASY_ASK))
    assert view.ask == EASY_ASK and view.anchor == "" and view.context == ()
    assert view.harness != 0
    assert view.harness == task_view(agent_request(HARD_ASK)).harness, "same harness, same fingerprint"
    plain = task_view({"system": "You are a translator.", "messages": [{"role": "user", "content": "bonjour"}]})
    assert plain.harness == 0 and plain.context == ("You are a translator.",)


def test_task_view_finds_the_ask_behind_tool_results_and_the_anchor_of_a_follow_up():
    body = follow_up(HARD_ASK, "Plan: 1. inventory callers 2. new task group 3. migrate.", "yes, go ahead")
    view = task_view(body)
    assert view.ask == "yes, go ahead" and view.anchor == HARD_ASK
    assert any("return [j() for j in jobs]" in c for c in view.context)
    # An agent loop whose latest user message is only a tool result: the ask is the person's last words.
    body["messages"].append({"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "Bash", "input": {}}]})
    body["messages"].append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "ok"}]})
    assert task_view(body).ask == "yes, go ahead"


def test_signals_do_not_depend_on_the_harness():
    with_harness = signals(agent_request(EASY_ASK))
    bare = signals({"messages": [{"role": "user", "content": EASY_ASK}]})
    np.testing.assert_array_equal(with_harness.indices, bare.indices)
    np.testing.assert_array_equal(with_harness.values, bare.values)
    assert with_harness.dense == bare.dense
    np.testing.assert_array_equal(with_harness.word_hashes, bare.word_hashes)


# --- the shipped model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED:
        pytest.skip("no shipped v2 model")
    return load(MODELS)


def _score(model, body) -> float:
    return to_scale(model.classify(body).difficulty)


def test_agent_traffic_is_judged_by_its_task(shipped):
    assert len(SYSTEM_PROMPT) > 15000 and len(TOOLS) >= 15
    easy, hard = _score(shipped, agent_request(EASY_ASK)), _score(shipped, agent_request(HARD_ASK))
    assert hard - easy >= 1.5, (easy, hard)
    # The harness alone does not lift a trivial turn out of the everyday range (2-4 on the rubric).
    assert easy <= 4.0
    assert _score(shipped, agent_request("thanks!")) <= 3.0
    assert shipped.classify(agent_request(EASY_ASK)).complexity == "low"


def test_a_follow_up_keeps_the_difficulty_of_the_request_it_approves(shipped):
    hard = _score(shipped, agent_request(HARD_ASK))
    go = _score(shipped, follow_up(HARD_ASK, "Plan: inventory the callers, then migrate them one by one.", "yes, go ahead"))
    assert go >= hard - 1.0, (hard, go)
    chat = {"messages": [{"role": "user", "content": HARD_ASK}, {"role": "assistant", "content": "Plan..."}, {"role": "user", "content": "yes, go ahead"}]}
    assert _score(shipped, chat) >= hard - 1.0


def test_shipped_model_ranks_anchor_prompts_in_order(shipped):
    anchors = [
        "hi there!",
        "What's the capital of Australia?",
        "Compare PostgreSQL and MongoDB for a multi-tenant SaaS with heavy reporting; recommend one.",
        "Design a rate limiter service for 1M req/s across regions; cover consistency and failure modes.",
    ]
    scores = [_score(shipped, {"messages": [{"role": "user", "content": a}]}) for a in anchors]
    assert scores == sorted(scores), scores
