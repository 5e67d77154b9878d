"""The local classifier: the fast path equals the scikit-learn reference, the artifact loads safely and
checks itself, whole-conversation features keep a short follow-up at its conversation's weight, and the
features stay the ones the shipped model was trained on (golden values; fast paths equal their definitions)."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from router.classify.dataset import Row
from router.classify import features
from router.classify.features import N_FEATURES, featurize, prompt_body
from router.classify.local import V1_NAME as DEFAULT_NAME, LocalModel, _round6, load, save
from router.classify.schema import CATEGORIES
from router.classify.train import TrainConfig, export_arrays, featurize_matrix, fit
from router.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
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
    model = load(MODELS, DEFAULT_NAME)
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
        load(tmp_path, DEFAULT_NAME)
    meta["feature_version"] = 1
    meta["categories"] = meta["categories"][::-1]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="label set"):
        load(tmp_path, DEFAULT_NAME)


def test_artifact_is_never_unpickled(tmp_path):
    """An .npz holding an object array (which needs pickle) is refused, not executed."""
    for name in (f"{DEFAULT_NAME}.npz", f"{DEFAULT_NAME}.json"):
        shutil.copy(MODELS / name, tmp_path / name)
    with np.load(tmp_path / f"{DEFAULT_NAME}.npz") as data:
        arrays = dict(data)
    arrays["cat_coef"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / f"{DEFAULT_NAME}.npz", **arrays)
    with pytest.raises(ValueError, match="pickle"):
        load(tmp_path, DEFAULT_NAME)


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
    model = load(MODELS, DEFAULT_NAME)
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


# Golden features: what the implementation the shipped model was trained with (FEATURE_VERSION 1) gave
# for these bodies, grouped by value. Any change here means retraining and a new FEATURE_VERSION.
GOLDEN_BODIES = {
    "short": prompt_body("write a python function to parse json"),
    "follow_up": {
        "system": "You are a helpful assistant.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "prove the sum formula for the first n odd numbers by induction"},
                    {"type": "image", "source": {}},
                ],
            },
            {"role": "assistant", "content": "Here is a plan..."},
            {"role": "user", "content": "yes, go ahead"},
        ],
        "tools": [{"name": "calculator", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    },
    "context": {
        "system": [{"type": "text", "text": "Be brief."}, "not a block"],
        "messages": [
            {"role": "user", "content": "Summarise the report below in two lines, and keep the numbers."},
            {"role": "assistant", "content": "Which report? 1) Q3 2) Q4"},
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "text", "data": "Q3: revenue up 12%; costs = flat {ok}."}},
                    {"type": "text", "text": "Q3, this one"},
                ],
            },
        ],
    },
    "non_ascii": prompt_body("ünïcödé 你好 how are you ```code``` $x^2$ 1. one\n2. two? must include exactly 3 words"),
    "empty": {},
    "not_a_list": {"messages": "hi", "system": [{"type": "text", "text": "Sys."}, 7]},
    "odd_blocks": {
        "messages": [
            None,
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "content": [{"type": "text", "text": "42 rows; 3 = 3"}]},
                    "junk",
                    {"type": "image"},
                ],
            },
        ]
    },
    "long_opening": prompt_body("İ" * 3 + " Ünïcode " + "x" * 250 + " tail"),
}
GOLDEN_FEATURES: dict[str, dict[float, list[int]]] = {
    "short": {
        0.223606797749979: [5693, 24523, 30531, 30749, 33888, 47288, 68172, 70392, 75077, 77757, 84414, 91723, 94182,
                            96863, 99432, 100858, 114243, 115521, 119492, 122572],
        0.10609626299202: [131072, 131073],
        0.0808671710653269: [131074],
    },
    "follow_up": {
        0.146280309490743: [2259, 18584, 23770, 24301, 28849, 33646, 37718, 38034, 39829, 41938, 43680, 44657, 45899,
                            46893, 47231, 51961, 53345, 68088, 71408, 79273, 80012, 82503, 83212, 88193, 90792, 97763,
                            98400, 104160, 106317, 111971, 114243, 119362, 121698, 126111, 126170, 126551, 130519],
        0.0731401547453717: [6204, 16643, 21238, 23421, 31433, 50416, 58007, 77890, 92431, 93847, 96278, 97489, 100248,
                             114000, 120377, 128678],
        0.247674093585689: [57922, 93670],
        0.139877224246572: [131072],
        0.120841429519753: [131073],
        0.161734342130654: [131074],
        0.35: [131081, 131082, 131084],
    },
    "context": {
        0.113008298350253: [2900, 2925, 2940, 10215, 10476, 12108, 13887, 15306, 15436, 15702, 18118, 18443, 23631,
                            25898, 26403, 26704, 29145, 30244, 30689, 30894, 33219, 33319, 34545, 35430, 36430, 37023,
                            41884, 43588, 44190, 44657, 48555, 48700, 51799, 51961, 56414, 56647, 57868, 61040, 63272,
                            67241, 71377, 77397, 79275, 83149, 83769, 87976, 90743, 93317, 93904, 95666, 95953, 101205,
                            101526, 102223, 105325, 114342, 118239, 120921, 126860],
        0.0565041491751263: [7943, 21538, 24359, 36365, 49840, 60027, 61367, 69639, 79247, 79374, 86249, 91807, 107146,
                             110333, 114189, 116042, 129473],
        0.191339681731607: [33646, 93670],
        0.216556754753458: [57922, 80734],
        0.158829220257957: [96132],
        0.145752024651453: [131072],
        0.120841429519753: [131073],
        0.161734342130654: [131074],
        0.14: [131076],
        0.07: [131078],
        0.35: [131083],
    },
    "non_ascii": {
        0.109051472067663: [4270, 5763, 9016, 10140, 16259, 19652, 21551, 24013, 26217, 28281, 32349, 32728, 32971,
                            34545, 35430, 35862, 36158, 36507, 38565, 39474, 40373, 41938, 44938, 47275, 48231, 49537,
                            49840, 50537, 60248, 61367, 61821, 70582, 71743, 73356, 74154, 75787, 75922, 75935, 75993,
                            77976, 80985, 84684, 86821, 92629, 93323, 96278, 96282, 97719, 102633, 103294, 103425,
                            109749, 115426, 118909, 119361, 119411, 121894, 122735, 125570, 126492, 128678, 129199],
        0.260228912866888: [22472],
        0.304445479778157: [36565],
        0.184640192467276: [57922, 68444, 114189],
        0.12923215663293: [131072, 131073],
        0.0808671710653269: [131074],
        0.175: [131075, 131079],
        0.105: [131077],
        0.07: [131078],
        0.035: [131080],
        0.134939759036145: [131085],
    },
    "empty": {},
    "not_a_list": {0.577350269189626: [32112, 57922, 126242], 0.0469419391126613: [131072]},
    "odd_blocks": {
        0.230224470527849: [14725, 21824, 28255, 31078, 41884, 45192, 57773, 60005, 60008, 64544, 67241, 89885, 104151,
                            124638, 127316, 128161],
        0.389803913170133: [36507],
        0.0789847975321478: [131072, 131073],
        0.0808671710653269: [131074],
        0.35: [131076, 131082],
        0.035: [131077],
    },
    "long_opening": {
        0.162909862128461: [9016, 16783, 39058, 41552, 41938, 46045, 61821, 75787, 77976, 80339, 92629, 111709, 112633],
        0.341884638608016: [13937, 39998, 44980],
        0.275830373748213: [49548, 90768, 98041, 117352],
        0.163070453598233: [131072, 131073],
        0.0808671710653269: [131074],
        0.0262172284644195: [131085],
    },
}


@pytest.mark.parametrize("name", GOLDEN_BODIES)
def test_features_are_the_ones_the_shipped_model_was_trained_on(name):
    expected = sorted((index, value) for value, indices in GOLDEN_FEATURES[name].items() for index in indices)
    indices, values = featurize(GOLDEN_BODIES[name])
    assert indices == [index for index, _ in expected]
    assert values == pytest.approx([value for _, value in expected], rel=0, abs=1e-12)
    assert all(type(i) is int for i in indices) and all(type(v) is float for v in values)
    parts = features.featurize_parts(GOLDEN_BODIES[name])
    assert parts[0].tolist() == [i for i in indices if i < features.N_HASHED]


def _texts(seed: int, count: int, alphabet: list[str], longest: int = 24) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest))) for _ in range(count)]


# Every ASCII character, and the pieces the patterns care about often enough to meet each other.
ASCII_ALPHABET = [chr(c) for c in range(128)] + ["1", "23", " ", "\n", ".", ")", "-", "*", "=", "^", "Ab", "x_y"] * 6
OTHER_ALPHABET = ASCII_ALPHABET + ["é", "İ", "ß", "K", "٣", "•", "∑", "π", "\u00a0", "\u2028", "\x85", "你好"] * 3


def reference_dense(task_chars: int, sample: str, words: list[bytes], facts: dict, total: int) -> list[float]:
    """The dense features as defined: counts with str.count and the defining patterns."""
    n = max(len(sample), 1)
    code = sum(map(sample.count, "{};=<>[]()#"))
    math_signs = sum(map(sample.count, ("$", "\\", "^", "∑", "∫", "√", "π", "≤", "≥", "≠")))
    math_signs += len(features._MATH.findall(sample))
    constraints = sum(1 for word in words if word.decode() in "must should exactly least most without only each "
                      "every ensure include format words step avoid limit don't not maximum minimum".split())
    return [
        math.log1p(total) / 12.0,
        math.log1p(task_chars) / 12.0,
        min(math.log1p(facts.get("turns", 1.0)) / 3.0, 1.0),
        min(sample.count("```") / 4.0, 1.0),
        min(code / n * 10.0, 1.0),
        min(math_signs / 10.0, 1.0),
        min(sample.count("?") / 5.0, 1.0),
        min(constraints / 8.0, 1.0),
        min(len(features._ENUM.findall(sample)) / 10.0, 1.0),
        facts.get("tools", 0.0),
        facts.get("images", 0.0),
        facts.get("documents", 0.0),
        facts.get("thinking", 0.0),
        min((len(sample.encode()) - len(sample)) / n * 4.0, 1.0),
    ]


def test_fast_words_and_dense_counts_equal_the_patterns_that_define_them():
    """ASCII text is tokenised and counted with bytes operations, not the defining regexes: same results."""
    for text in [chr(a) + chr(b) + "x" + chr(b) for a in range(128) for b in range(128)]:
        assert features._tokens(text) == [w.encode() for w in features._TOKEN.findall(text.lower())]
    texts = _texts(0, 15000, ASCII_ALPHABET) + _texts(1, 3000, OTHER_ALPHABET) + _texts(2, 200, OTHER_ALPHABET, 400)
    for text in texts:
        words = features._tokens(text)
        assert words == [w.encode() for w in features._TOKEN.findall(text.lower())], text
        facts = {"turns": 2.0, "images": 1.0}
        assert features._dense(7, text, words, facts, 99) == reference_dense(7, text, words, facts, 99), text


def test_opening_words_are_the_first_words_of_the_first_200_characters():
    rng = random.Random(3)
    for _ in range(3000):
        pieces = ["word ", "Ab-c ", "x" * rng.randint(1, 120), " " * rng.randint(1, 80), "\n", ";"]
        pieces += ["İ", "é "] if rng.random() < 0.2 else []
        text = "".join(rng.choice(pieces) for _ in range(60))[: rng.randint(150, 400)]
        expected = [w.encode() for w in features._TOKEN.findall(text[:200].lower())][:features.OPENING_WORDS]
        assert features._opening_words(text, features._tokens(text)) == expected, text


def test_rounding_is_round_to_six_places_to_the_bit():
    rng = random.Random(4)
    values = [rng.random() for _ in range(100_000)] + [rng.random() ** 20 for _ in range(10_000)]
    values += [0.0, 1.0, 5e-324, 0.5e-6, 2.5e-6, 0.9999995, 1 / 128, 3 / 128]
    for k in range(0, 1_000_000, 997):  # exact halves and their neighbours, where float products can mislead
        half = (k + 0.5) / 1e6
        values += [half + d * math.ulp(half) for d in range(-3, 4)]
    assert [repr(v) for v in _round6(values)] == [repr(round(v, 6)) for v in values]


def test_classify_reports_the_probabilities_rounded(trained):
    *_, model = trained
    shipped = load(MODELS, DEFAULT_NAME)
    for m in (model, shipped):
        for body in BODIES + list(GOLDEN_BODIES.values()):
            probs, p_med, p_high = m.probabilities(body)
            c = m.classify(body)
            best = int(np.argmax(probs))
            difficulty = (p_med + p_high) / 2.0
            assert c.category == CATEGORIES[best]
            assert c.difficulty == round(difficulty, 6)
            assert c.confidence == round(min(float(probs[best]), max(p_med, 1.0 - p_med)), 6)
            assert c.scores == {name: round(float(p), 6) for name, p in zip(CATEGORIES, probs)}
            assert list(c.scores) == list(CATEGORIES)
            assert all(type(v) is float for v in (c.difficulty, c.confidence, *c.scores.values()))
