"""Training the v2 model with scikit-learn, deterministically, and exporting it as plain arrays.

Owns the reference pipelines (features -> LogisticRegression for the category, features -> Ridge for the
1-10 difficulty), sample weights, the held-out-free choice of tier cut-offs (out-of-fold scores of the
training rows, cut at ``TrainConfig.traffic_mix``) and the export to ``scorer.ScoreModel``'s arrays.

Difficulty is regression on RUBRIC_v2's anchored labels of natural requests, plus pairwise constraints
from benchmark sources *within* a source and subject (a MATH level-5 algebra problem against a level-2 one,
a LeetCode Hard against an Easy, a BBH item no model solved against one solved directly, a GSM8K problem
needing more steps, a RouterBench item fewer models got right): each pair adds the row x_harder - x_easier
with target ``pair_margin`` x (level difference on a 0-1 scale). A difference row carries no intercept and
no source base rate, which is the point: a benchmark's base rate is not a difficulty, its internal order is.
The squared loss over both kinds of rows is a ridge without its own intercept, on the features plus a
constant column (``INTERCEPT_COLUMN``: 1 on request rows, 0 on difference rows).
Dolly rows whose passage is missing do not train difficulty (their text is shorter than the real request).
"""

from __future__ import annotations

import collections
import platform
import sys
from types import MappingProxyType
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from router.classify.embedding import WordTable
from router.classify.natural import NaturalRow
from router.classify.schema import CATEGORIES, COMPLEXITIES
from router.classify.scorer import N_OUT, ScoreModel, calibrate, to_unit
from router.classify.signals import DENSE_NAMES, FEATURE_VERSION, N_DENSE, N_HASHED, signals


class TrainConfig(msgspec.Struct, frozen=True, kw_only=True):
    seed: int = 0
    c_category: float = 16.0
    alpha_difficulty: float = 1.0
    max_iter: int = 300
    class_balance: float = 0.5
    """0 = no balancing, 1 = fully balanced categories (as inverse frequency)."""
    folds: int = 4
    """Out-of-fold scores of the training rows set the cut-offs and the score's typical error."""
    pair_weight: float = 0.3
    """Weight of each benchmark difference row against a natural row's 1."""
    pairs_per_source: int = 600
    pair_margin: float = 2.0
    """Target gap on the 1-10 scale between the hardest and easiest level of a benchmark (levels on 0-1)."""
    traffic_mix: tuple[float, float, float] = (0.70, 0.22, 0.08)
    """Target share of low / medium / high (Haiku / Sonnet / Opus) on natural requests: the cut-offs."""
    embed_scale_category: float = 1.0
    """The unit-length mean word vector enters the category model multiplied by this: its coefficients are
    penalised as if the block were this much larger, so a larger value leans more on the embedding (folded
    into the exported coefficients: no work at serving time)."""
    embed_scale_difficulty: float = 1.0
    """The same for the difficulty model."""


INTERCEPT_COLUMN = 10.0
"""Value of the constant column that stands in for the difficulty model's intercept (large, so the ridge
penalty on the intercept is negligible: alpha * (b / 10)^2)."""
PAIR_SOURCES = MappingProxyType({
    "math_hendrycks": "type",
    "leetcode": None,
    "bbh": "task",
    "routerbench": "eval_name",
    "gsm8k_train": None,
})
"""Benchmark sources whose internal difficulty order trains pairs, and the field pairs must share."""


class Pair(msgspec.Struct, frozen=True):
    source: str
    harder: str
    easier: str
    gap: float
    """Level difference, 0-1."""


def benchmark_pairs(data_dir: Any, config: TrainConfig) -> list[Pair]:
    """Seeded pairs of training-split benchmark prompts at levels at least 0.2 apart, within one source and
    subject (``PAIR_SOURCES``). RouterBench's level is the share of its 11 models that failed."""
    import gzip
    import json
    from pathlib import Path

    from router.classify.dataset import COMBINED, clean_text

    path = Path(data_dir) / COMBINED
    if not path.exists():
        return []
    groups: dict[str, dict[str, list[tuple[str, float]]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            source = raw["source"]
            if source not in PAIR_SOURCES or raw.get("split_hint") != "train" or raw.get("difficulty_score") is None:
                continue
            extra = raw.get("extra") or {}
            level = float(raw["difficulty_score"])
            if source == "routerbench" and "frac_models_correct" in extra:
                level = 1.0 - float(extra["frac_models_correct"])
            key = PAIR_SOURCES[source]
            groups[source][str(extra.get(key)) if key else ""].append((clean_text(source, raw["text"]), level))
    rng = np.random.default_rng(config.seed)
    pairs: list[Pair] = []
    for source in sorted(groups):
        subjects = sorted(groups[source])
        made = tries = 0
        while made < config.pairs_per_source and tries < config.pairs_per_source * 20:
            tries += 1
            members = groups[source][subjects[int(rng.integers(len(subjects)))]]
            a, b = members[int(rng.integers(len(members)))], members[int(rng.integers(len(members)))]
            if abs(a[1] - b[1]) < 0.2:
                continue
            if a[1] < b[1]:
                a, b = b, a
            pairs.append(Pair(source, a[0], b[0], a[1] - b[1]))
            made += 1
    return pairs


def progress(items: Sequence[Any], description: str) -> Any:
    """A progress bar on a terminal, the plain sequence otherwise (CI logs, pipes)."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, leave=False, file=sys.stderr)


def featurize_matrix(
    bodies: Sequence[dict[str, Any]], table: WordTable, description: str = "features", embed_scale: float = 1.0
) -> sp.csr_matrix:
    """[hashed words | dense | mean word vector x ``embed_scale``] of each body, as the models read them."""
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    dense_cols = np.arange(N_HASHED, N_HASHED + N_DENSE)
    embed_cols = np.arange(N_HASHED + N_DENSE, N_HASHED + N_DENSE + table.dims)
    for body in progress(bodies, description):
        sig = signals(body)
        indices += [sig.indices.astype(np.int64), dense_cols, embed_cols]
        data += [sig.values, np.asarray(sig.dense), table.mean_vector(sig.word_hashes)]
        indptr.append(indptr[-1] + sig.indices.size + N_DENSE + table.dims)
    x = sp.csr_matrix(
        (np.concatenate(data) if data else np.zeros(0), np.concatenate(indices) if indices else np.zeros(0, np.int64), indptr),
        shape=(len(bodies), N_HASHED + N_DENSE + table.dims),
    )
    x.eliminate_zeros()
    return scale_embedding(x, embed_scale)


def scale_embedding(x: sp.csr_matrix, scale: float) -> sp.csr_matrix:
    """``x`` with its mean-word-vector block (the columns after the dense block) multiplied by ``scale``."""
    if scale == 1.0:
        return x
    factors = np.ones(x.shape[1])
    factors[N_HASHED + N_DENSE :] = scale
    return (x @ sp.diags(factors)).tocsr()


def reference_pipelines(config: TrainConfig, table: WordTable) -> tuple[Pipeline, Pipeline]:
    """The scikit-learn pipelines the two models are trained as; the fast path must equal them."""

    def features(scale: float) -> FunctionTransformer:
        return FunctionTransformer(
            featurize_matrix, kw_args={"table": table, "embed_scale": scale}, accept_sparse=True, validate=False
        )

    category = Pipeline(
        [
            ("features", features(config.embed_scale_category)),
            ("model", LogisticRegression(C=config.c_category, max_iter=config.max_iter, random_state=config.seed)),
        ]
    )
    with_constant = FunctionTransformer(
        lambda bodies: _with_constant(
            featurize_matrix(bodies, table, embed_scale=config.embed_scale_difficulty), INTERCEPT_COLUMN
        ),
        accept_sparse=True,
        validate=False,
    )
    difficulty = Pipeline([("features", with_constant), ("model", Ridge(alpha=config.alpha_difficulty, fit_intercept=False))])
    return category, difficulty


def category_weights(rows: Sequence[NaturalRow], config: TrainConfig) -> np.ndarray:
    counts = collections.Counter(r.category for r in rows)
    mean = len(rows) / len(counts)
    return np.array([(mean / counts[r.category]) ** config.class_balance for r in rows])


def difficulty_rows(rows: Sequence[NaturalRow]) -> np.ndarray:
    """Which rows train difficulty: all but Dolly rows whose passage is missing."""
    return np.array([not r.context_missing for r in rows])


def _with_constant(x: sp.csr_matrix, value: float) -> sp.csr_matrix:
    return sp.hstack([x, sp.csr_matrix(np.full((x.shape[0], 1), value))], format="csr")


def pair_matrix(pairs: Sequence[Pair], table: WordTable) -> sp.csr_matrix:
    """x_harder - x_easier for each pair (and 0 in the constant column)."""
    harder = featurize_matrix([_prompt(p.harder) for p in pairs], table, "pair features")
    easier = featurize_matrix([_prompt(p.easier) for p in pairs], table, "pair features")
    return _with_constant((harder - easier).tocsr(), 0.0)


def _difficulty_design(x: sp.csr_matrix, config: TrainConfig) -> sp.csr_matrix:
    """Unscaled features -> what the difficulty model reads (its embedding scale, the constant column)."""
    return _with_constant(scale_embedding(x, config.embed_scale_difficulty), INTERCEPT_COLUMN)


def _prompt(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _difficulty_fit(
    x: sp.csr_matrix, y: np.ndarray, pairs_x: sp.csr_matrix | None, pairs: Sequence[Pair], config: TrainConfig
) -> Ridge:
    design = _difficulty_design(x, config)
    target, weight = y, np.ones(len(y))
    if pairs_x is not None and pairs:
        # The constant column of a difference row is 0, so scaling the block after it changes nothing there.
        design = sp.vstack([design, scale_embedding(pairs_x, config.embed_scale_difficulty)], format="csr")
        target = np.concatenate([y, config.pair_margin * np.array([p.gap for p in pairs])])
        weight = np.concatenate([weight, np.full(len(pairs), config.pair_weight)])
    return Ridge(alpha=config.alpha_difficulty, fit_intercept=False).fit(design, target, sample_weight=weight)


def fit_models(
    rows: Sequence[NaturalRow],
    config: TrainConfig,
    table: WordTable,
    x: sp.csr_matrix | None = None,
    pairs: Sequence[Pair] = (),
    pairs_x: sp.csr_matrix | None = None,
) -> tuple[Pipeline, Pipeline]:
    """Train both pipelines on ``rows`` (``x``: their features, when already computed) and ``pairs``."""
    category, difficulty = reference_pipelines(config, table)
    bodies = [r.body for r in rows]
    if x is None:
        x = featurize_matrix(bodies, table, "training features")
    if pairs and pairs_x is None:
        pairs_x = pair_matrix(pairs, table)
    category.named_steps["model"].fit(
        scale_embedding(x, config.embed_scale_category), [r.category for r in rows],
        sample_weight=category_weights(rows, config),
    )
    keep = difficulty_rows(rows)
    y = np.array([r.difficulty for r in rows])
    difficulty.steps[-1] = ("model", _difficulty_fit(x[keep], y[keep], pairs_x, pairs, config))
    for pipeline in (category, difficulty):
        pipeline.named_steps["features"].fit(bodies[:1])
    return category, difficulty


def export_arrays(
    category: Pipeline, difficulty: Pipeline, table_arrays: dict[str, np.ndarray], config: TrainConfig
) -> dict[str, np.ndarray]:
    """Both models' coefficients side by side, one column per output, category columns in ``CATEGORIES``
    order (a class the data lacks gets a very low intercept)."""
    cat_model: LogisticRegression = category.named_steps["model"]
    ridge: Ridge = difficulty.named_steps["model"]
    n_features = ridge.coef_.shape[0] - 1  # the last coefficient is the constant column's
    coef = np.zeros((n_features, N_OUT))
    intercept = np.full(N_OUT, -30.0)
    if len(cat_model.classes_) < 3:
        raise ValueError("the category model needs at least three categories in its training rows")
    for row, name in enumerate(cat_model.classes_):
        column = CATEGORIES.index(name)
        coef[:, column] = cat_model.coef_[row]
        intercept[column] = cat_model.intercept_[row]
    coef[:, -1] = ridge.coef_[:-1]
    intercept[-1] = ridge.coef_[-1] * INTERCEPT_COLUMN
    # The models read the mean word vector scaled (TrainConfig.embed_scale_*): the scale goes into its rows.
    coef[N_HASHED + N_DENSE :, :-1] *= config.embed_scale_category
    coef[N_HASHED + N_DENSE :, -1] *= config.embed_scale_difficulty
    return {
        "word_rows": coef[:N_HASHED],
        "dense_rows": np.vstack([coef[N_HASHED : N_HASHED + N_DENSE], intercept]),
        "embed_rows": coef[N_HASHED + N_DENSE :],
        **table_arrays,
    }


def thresholds_for_mix(units: np.ndarray, mix: tuple[float, float, float]) -> dict[str, float]:
    """Cut-offs on the unit difficulty so that ``mix`` of these scores falls in low / medium / high."""
    low_share, medium_share, _ = mix
    medium_at = float(np.quantile(units, low_share))
    high_at = float(np.quantile(units, low_share + medium_share))
    return {"medium_at": round(medium_at, 6), "high_at": round(max(high_at, medium_at + 1e-6), 6)}


def out_of_fold_scores(
    rows: Sequence[NaturalRow], x: sp.csr_matrix, config: TrainConfig, pairs: Sequence[Pair] = (),
    pairs_x: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Each training row's difficulty score from a model fitted without its fold (conversations kept
    together; the benchmark pairs in every fold), for cut-offs and error estimates that do not flatter it."""
    fold_of = {}
    rng = np.random.default_rng(config.seed)
    for conversation in sorted({r.conversation for r in rows}):
        fold_of[conversation] = int(rng.integers(config.folds))
    folds = np.array([fold_of[r.conversation] for r in rows])
    y = np.array([r.difficulty for r in rows])
    keep = difficulty_rows(rows)
    scores = np.zeros(len(rows))
    for fold in range(config.folds):
        train = (folds != fold) & keep
        model = _difficulty_fit(x[train], y[train], pairs_x, pairs, config)
        scores[folds == fold] = model.predict(_difficulty_design(x[folds == fold], config))
    return scores


CALIBRATION_KNOTS = 41


def calibration_map(raw: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the monotone map from raw scores to the rubric scale: the raw scores' quantiles against the
    labels' quantiles at the same probabilities, an integer label k read as spread evenly over
    [k - 0.5, k + 0.5] so the label quantile function is strictly increasing (no ties are created)."""
    probs = np.linspace(0.0, 1.0, CALIBRATION_KNOTS)
    probs[0], probs[-1] = 0.002, 0.998  # the extremes of a few thousand rows are noise
    xs = np.quantile(raw, probs)
    values = np.sort(labels)
    counts = np.array([np.sum(values == k) for k in np.unique(values)])
    edges = np.concatenate([[0.0], np.cumsum(counts) / values.size])
    levels = np.unique(values)
    ys = np.interp(probs, edges, np.concatenate([[levels[0] - 0.5], levels + 0.5]))
    # Keep the knots strictly increasing in x (equal raw quantiles would make a vertical step).
    keep = np.concatenate([[True], np.diff(xs) > 1e-9])
    return xs[keep], ys[keep]


def build_model(
    rows: Sequence[NaturalRow],
    config: TrainConfig,
    table: WordTable,
    table_arrays: dict[str, np.ndarray],
    extra_meta: dict[str, Any],
    x: sp.csr_matrix | None = None,
    pairs: Sequence[Pair] = (),
    pairs_x: sp.csr_matrix | None = None,
) -> tuple[ScoreModel, dict[str, np.ndarray], dict[str, Any]]:
    """Train, export, and set the cut-offs and the score's typical error from out-of-fold scores."""
    if x is None:
        x = featurize_matrix([r.body for r in rows], table, "training features")
    if pairs and pairs_x is None:
        pairs_x = pair_matrix(pairs, table)
    category, difficulty = fit_models(rows, config, table, x, pairs, pairs_x)
    keep = difficulty_rows(rows)
    labels = np.array([r.difficulty for r in rows])
    raw_oof = out_of_fold_scores(rows, x, config, pairs, pairs_x)
    calib_x, calib_y = calibration_map(raw_oof[keep], labels[keep])
    arrays = {**export_arrays(category, difficulty, table_arrays, config), "calib_x": calib_x, "calib_y": calib_y}
    oof = np.array([calibrate(v, calib_x.tolist(), calib_y.tolist()) for v in raw_oof])
    residual = oof[keep] - labels[keep]
    metadata: dict[str, Any] = {
        "feature_version": FEATURE_VERSION,
        "dense_names": list(DENSE_NAMES),
        "categories": list(CATEGORIES),
        "complexities": list(COMPLEXITIES),
        "difficulty_scale": "RUBRIC_v2 1-10, reported as (score - 1) / 9 in [0, 1]",
        "train_config": msgspec.to_builtins(config),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__},
        "thresholds": thresholds_for_mix(np.array([to_unit(s) for s in oof]), config.traffic_mix),
        "residual_sd": round(float(np.sqrt(np.mean(residual**2))), 4),
        "benchmark_pairs": dict(sorted(collections.Counter(p.source for p in pairs).items())),
        **extra_meta,
    }
    return ScoreModel(arrays, metadata), arrays, metadata


def trainer(
    config: TrainConfig, table: WordTable, table_arrays: dict[str, np.ndarray], pairs: Sequence[Pair] = ()
) -> Callable[[Sequence[NaturalRow]], ScoreModel]:
    """A function that trains a model on a subset (leave-one-source-out); the pairs' features once."""
    pairs_x = pair_matrix(pairs, table) if pairs else None

    def train(subset: Sequence[NaturalRow]) -> ScoreModel:
        return build_model(subset, config, table, table_arrays, {}, None, pairs, pairs_x)[0]

    return train
