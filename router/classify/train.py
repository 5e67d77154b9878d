"""Training the local classifier with scikit-learn, deterministically, and exporting it as plain arrays.

Owns the reference pipeline (features -> LogisticRegression), sample weighting across sources, and the
complexity thresholds. ``local.LocalModel`` serves the exported arrays; tests hold the two equal.
"""

from __future__ import annotations

import collections
import platform
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from router.classify.dataset import Row
from router.classify.features import FEATURE_VERSION, HASH_BITS, N_FEATURES, featurize
from router.classify.local import LocalModel
from router.classify.schema import CATEGORIES, COMPLEXITIES


class TrainConfig(msgspec.Struct, frozen=True, kw_only=True):
    seed: int = 0
    c_category: float = 8.0
    c_complexity: float = 2.0
    max_iter: int = 400
    source_cap: int = 2500
    """Rows per source that count at full weight; larger sources are down-weighted to this many."""
    natural_boost: float = 4.0
    """Extra weight on natural user prompts: the closest thing to real traffic."""
    class_balance: float = 0.5
    """0 = no balancing, 1 = fully balanced classes (as inverse frequency)."""
    traffic_mix: tuple[float, float, float] = (0.70, 0.22, 0.08)
    """Target share of low / medium / high on natural prompts; sets the complexity cut-offs."""


_TIER_CONF_WEIGHT = {"high": 1.0, "medium": 0.7, "low": 0.4}


def featurize_matrix(bodies: Sequence[dict[str, Any]]) -> sp.csr_matrix:
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for body in bodies:
        idx, val = featurize(body)
        indices.extend(idx)
        data.extend(val)
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
        shape=(len(bodies), N_FEATURES),
    )


def reference_pipeline(config: TrainConfig) -> Pipeline:
    """The scikit-learn pipeline the category model is trained as; the fast path must equal it."""
    return Pipeline(
        [
            ("features", FunctionTransformer(featurize_matrix, accept_sparse=True, validate=False)),
            (
                "model",
                LogisticRegression(C=config.c_category, max_iter=config.max_iter, random_state=config.seed),
            ),
        ]
    )


def sample_weights(rows: Sequence[Row], config: TrainConfig) -> np.ndarray:
    per_source = collections.Counter(r.source for r in rows)
    weights = np.array(
        [min(1.0, config.source_cap / per_source[r.source]) * (config.natural_boost if r.natural else 1.0) for r in rows]
    )
    per_class: dict[str, float] = collections.defaultdict(float)
    for row, weight in zip(rows, weights):
        per_class[row.category] += weight
    mean = sum(per_class.values()) / len(per_class)
    balance = np.array([(mean / per_class[r.category]) ** config.class_balance for r in rows])
    return weights * balance


def _complexity_model(config: TrainConfig) -> LogisticRegression:
    return LogisticRegression(C=config.c_complexity, max_iter=config.max_iter, random_state=config.seed)


def fit(rows: Sequence[Row], config: TrainConfig) -> tuple[Pipeline, LogisticRegression, LogisticRegression]:
    """Train the category pipeline and the two complexity models on ``rows``."""
    bodies = [r.request() for r in rows]
    x = featurize_matrix(bodies)
    weights = sample_weights(rows, config)
    pipeline = reference_pipeline(config)
    pipeline.named_steps["model"].fit(x, [r.category for r in rows], sample_weight=weights)
    pipeline.named_steps["features"].fit(bodies)
    probs = pipeline.named_steps["model"].predict_proba(x)
    x_cx = sp.hstack([x, sp.csr_matrix(_category_order(pipeline, probs))], format="csr")
    tier_weights = weights * np.array([_TIER_CONF_WEIGHT.get(r.tier_conf, 0.5) for r in rows])
    med = _complexity_model(config).fit(x_cx, [r.tier != "low" for r in rows], sample_weight=tier_weights)
    high = _complexity_model(config).fit(x_cx, [r.tier == "high" for r in rows], sample_weight=tier_weights)
    return pipeline, med, high


def _category_order(pipeline: Pipeline, probs: np.ndarray) -> np.ndarray:
    """Columns of ``probs`` reordered to ``CATEGORIES`` (classes the data lacks get probability 0)."""
    classes = list(pipeline.named_steps["model"].classes_)
    out = np.zeros((probs.shape[0], len(CATEGORIES)))
    for column, name in enumerate(classes):
        out[:, CATEGORIES.index(name)] = probs[:, column]
    return out


def export_arrays(pipeline: Pipeline, med: LogisticRegression, high: LogisticRegression) -> dict[str, np.ndarray]:
    """Coefficients laid out in ``CATEGORIES`` order. A class the data lacks gets a very low intercept."""
    model = pipeline.named_steps["model"]
    coef = np.zeros((len(CATEGORIES), N_FEATURES))
    intercept = np.full(len(CATEGORIES), -30.0)
    for row, name in enumerate(model.classes_):
        coef[CATEGORIES.index(name)] = model.coef_[row]
        intercept[CATEGORIES.index(name)] = model.intercept_[row]
    return {
        "cat_coef": coef,
        "cat_intercept": intercept,
        "med_coef": med.coef_[0],
        "med_intercept": np.asarray(med.intercept_[0]),
        "high_coef": high.coef_[0],
        "high_intercept": np.asarray(high.intercept_[0]),
    }


def thresholds_for_mix(difficulties: np.ndarray, mix: tuple[float, float, float]) -> dict[str, float]:
    """Cut-offs so that ``mix`` of these difficulties falls in low / medium / high."""
    low_share, medium_share, _ = mix
    medium_at = float(np.quantile(difficulties, low_share))
    high_at = float(np.quantile(difficulties, low_share + medium_share))
    return {"medium_at": round(medium_at, 6), "high_at": round(max(high_at, medium_at + 1e-6), 6)}


def build_model(
    rows: Sequence[Row], config: TrainConfig, calibration_rows: Sequence[Row], extra_meta: dict[str, Any]
) -> tuple[LocalModel, dict[str, np.ndarray], dict[str, Any]]:
    """Train, export and set thresholds from ``calibration_rows`` (natural prompts the model trained on)."""
    pipeline, med, high = fit(rows, config)
    arrays = export_arrays(pipeline, med, high)
    metadata: dict[str, Any] = {
        "feature_version": FEATURE_VERSION,
        "hash_bits": HASH_BITS,
        "n_features": N_FEATURES,
        "categories": list(CATEGORIES),
        "complexities": list(COMPLEXITIES),
        "train_config": msgspec.to_builtins(config),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "thresholds": {"medium_at": 0.5, "high_at": 0.75},
        **extra_meta,
    }
    provisional = LocalModel(arrays, metadata)
    difficulties = np.array([provisional.classify(r.request()).difficulty for r in calibration_rows])
    metadata["thresholds"] = thresholds_for_mix(difficulties, config.traffic_mix)
    return LocalModel(arrays, metadata), arrays, metadata
