"""The local classifier at serving time: plain arrays, a JSON sidecar, and a fast path with no scikit-learn.

``load`` reads either artifact format: 2 is the difficulty model (``scorer.ScoreModel``, triage-local-v2 and
later), 1 the earlier category + two-tier model below (triage-local-v1, kept as the baseline it is measured
against). Owns the artifact format (``<name>.npz`` arrays loaded with ``allow_pickle=False`` + ``<name>.json``
metadata) and inference. Training builds the same model with scikit-learn (``train``); the fast path here
computes exactly what scikit-learn's ``predict_proba`` would (a test holds the two equal) without its
per-call validation.

Model: multinomial logistic regression for the category; two binary logistic regressions for complexity
(``>= medium`` and ``high``) over the same features plus the category probabilities. Difficulty is the
mean of the two probabilities; complexity cuts it at thresholds recorded in the metadata.
"""

from __future__ import annotations

import json
import math
import operator
from pathlib import Path
from typing import Any

import numpy as np

from router.classify.features import DENSE_WEIGHT, FEATURE_VERSION, N_FEATURES, N_HASHED, featurize_parts
from router.classify.schema import CATEGORIES, Classification, complexity_for
from router.errors import ConfigError

ARTIFACT_FORMAT = 1
DEFAULT_NAME = "triage-local-v2"
V1_NAME = "triage-local-v1"
ARRAYS = ("cat_coef", "cat_intercept", "med_coef", "med_intercept", "high_coef", "high_intercept")


class LocalModel:
    """Arrays plus thresholds. ``classify`` is the fast path; ``probabilities`` exposes its parts for tests."""

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
        self.metadata = metadata
        self.cat_coef = np.ascontiguousarray(arrays["cat_coef"], dtype=np.float64)
        self.cat_intercept = np.asarray(arrays["cat_intercept"], dtype=np.float64)
        self.med_coef = np.asarray(arrays["med_coef"], dtype=np.float64)
        self.med_intercept = float(arrays["med_intercept"])
        self.high_coef = np.asarray(arrays["high_coef"], dtype=np.float64)
        self.high_intercept = float(arrays["high_intercept"])
        # The three linear models read the same features, so their word coefficients sit side by side, one
        # row per feature: a request's few hundred rows are gathered in one call and multiplied in another,
        # giving the 12 category logits and the two complexity scores' feature terms together.
        stacked = np.column_stack([self.cat_coef.T, self.med_coef[:N_FEATURES], self.high_coef[:N_FEATURES]])
        self._word_rows = np.ascontiguousarray(stacked[:N_HASHED])
        # The dense features come unscaled: their rows carry DENSE_WEIGHT, and one more row the intercepts.
        intercepts = np.concatenate([self.cat_intercept, [self.med_intercept, self.high_intercept]])
        self._dense_rows = np.vstack([stacked[N_HASHED:] * DENSE_WEIGHT, intercepts])
        # The complexity models also read the category probabilities: a 12-term dot product, done on floats.
        self._med_cats = self.med_coef[N_FEATURES:].tolist()
        self._high_cats = self.high_coef[N_FEATURES:].tolist()
        thresholds = metadata["thresholds"]
        self.medium_at = float(thresholds["medium_at"])
        self.high_at = float(thresholds["high_at"])

    def _scores(self, body: dict[str, Any]) -> tuple[list[float], float, float]:
        """``probabilities`` as plain floats. After the one matrix product everything is a dozen numbers,
        cheaper in Python than in numpy calls."""
        indices, values, dense = featurize_parts(body)
        dense.append(1.0)  # the intercepts' row
        z = np.dot(values, self._word_rows.take(indices, axis=0))
        z += np.dot(dense, self._dense_rows)
        *logits, med, high = z.tolist()
        top = max(logits)
        exp = [math.exp(logit - top) for logit in logits]
        total = sum(exp)
        probs = [e / total for e in exp]
        med += sum(map(operator.mul, probs, self._med_cats))
        high += sum(map(operator.mul, probs, self._high_cats))
        return probs, _sigmoid(med), _sigmoid(high)

    def probabilities(self, body: dict[str, Any]) -> tuple[np.ndarray, float, float]:
        """(category probabilities, P(complexity >= medium), P(complexity == high))."""
        probs, p_med, p_high = self._scores(body)
        return np.array(probs), p_med, p_high

    def classify(self, body: dict[str, Any]) -> Classification:
        probs, p_med, p_high = self._scores(body)
        top = max(probs)
        best = probs.index(top)  # the first of equal maxima, as numpy's argmax
        difficulty = (p_med + p_high) / 2.0
        complexity = complexity_for(difficulty, self.medium_at, self.high_at)
        # How sure the model is of what routing uses: the category and the side of the medium cut.
        side = max(p_med, 1.0 - p_med)
        difficulty, confidence, *probs = _round6([difficulty, min(top, side), *probs])
        return Classification(
            category=CATEGORIES[best],
            complexity=complexity,
            difficulty=difficulty,
            confidence=confidence,
            stage="local",
            scores=dict(zip(CATEGORIES, probs)),
        )


_ROUNDER = 1.5 * 2.0**52
"""Adding then subtracting this rounds a double below 2**51 to the nearest integer (ties to even)."""


def _round6(values: list[float]) -> list[float]:
    """``[round(v, 6) for v in values]`` in plain float arithmetic, at about half the cost. ``round(v, 6)``
    is the double nearest to v's exact value rounded to 6 decimals; so is the nearest integer to
    ``v * 1e6`` divided by 1e6 (a correctly rounded division of an exact integer), unless the product's own
    rounding moved it across a half -- only possible within an ulp of one, so near a half ``round`` itself
    decides. Outputs are the same to the bit."""
    rounded = []
    for value in values:
        scaled = value * 1e6
        nearest = scaled + _ROUNDER - _ROUNDER
        if -0.4999 < scaled - nearest < 0.4999:
            rounded.append(nearest / 1e6)
        else:
            rounded.append(round(value, 6))
    return rounded


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def save(model_dir: Path, name: str, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stored = {key: np.asarray(arrays[key], dtype=np.float32) for key in ARRAYS}
    np.savez_compressed(model_dir / f"{name}.npz", **stored)
    meta = {**metadata, "artifact_format": ARTIFACT_FORMAT, "arrays": {k: list(v.shape) for k, v in stored.items()}}
    (model_dir / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return model_dir / f"{name}.npz"


def save_v2(model_dir: Path, name: str, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """Write a format-2 artifact: float32 coefficients, the word table as trained (float16 vectors)."""
    from router.classify import scorer

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stored = {
        key: np.asarray(arrays[key], dtype=np.float16 if key == "vocab_vectors" else None)
        for key in scorer.ARRAYS
    }
    for key in ("word_rows", "dense_rows", "embed_rows", "vocab_tokens", "calib_x", "calib_y"):
        stored[key] = stored[key].astype(np.float32)
    stored["vocab_hashes"] = stored["vocab_hashes"].astype(np.uint32)
    np.savez_compressed(model_dir / f"{name}.npz", **stored)
    meta = {
        **metadata,
        "artifact_format": scorer.ARTIFACT_FORMAT,
        "arrays": {k: list(v.shape) for k, v in stored.items()},
    }
    (model_dir / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return model_dir / f"{name}.npz"


def load(model_dir: Path, name: str = DEFAULT_NAME) -> Any:
    """Load and check an artifact (``LocalModel`` for format 1, ``scorer.ScoreModel`` for format 2). A
    mismatch with this code's features or labels fails loudly; nothing is ever unpickled."""
    meta_path = Path(model_dir) / f"{name}.json"
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{meta_path}: cannot read the classifier metadata: {exc}") from None
    if metadata.get("artifact_format") == 2:
        return _load_v2(Path(model_dir), name, meta_path, metadata)
    problems = []
    if metadata.get("artifact_format") != ARTIFACT_FORMAT:
        problems.append(f"artifact_format {metadata.get('artifact_format')} != {ARTIFACT_FORMAT}")
    if metadata.get("feature_version") != FEATURE_VERSION:
        problems.append(f"feature_version {metadata.get('feature_version')} != {FEATURE_VERSION} (retrain)")
    if tuple(metadata.get("categories", ())) != CATEGORIES:
        problems.append("label set differs from this code's CATEGORIES")
    if metadata.get("n_features") != N_FEATURES:
        problems.append(f"n_features {metadata.get('n_features')} != {N_FEATURES}")
    if problems:
        raise ConfigError(f"{meta_path}: model does not match this router: " + "; ".join(problems))
    with np.load(Path(model_dir) / f"{name}.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in ARRAYS}
    expected = {
        "cat_coef": (len(CATEGORIES), N_FEATURES),
        "cat_intercept": (len(CATEGORIES),),
        "med_coef": (N_FEATURES + len(CATEGORIES),),
        "high_coef": (N_FEATURES + len(CATEGORIES),),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ConfigError(f"{meta_path}: array {key} has shape {arrays[key].shape}, expected {shape}")
    return LocalModel(arrays, metadata)


def _load_v2(model_dir: Path, name: str, meta_path: Path, metadata: dict[str, Any]) -> Any:
    from router.classify import scorer, signals

    problems = []
    if metadata.get("feature_version") != signals.FEATURE_VERSION:
        problems.append(f"feature_version {metadata.get('feature_version')} != {signals.FEATURE_VERSION} (retrain)")
    if tuple(metadata.get("categories", ())) != CATEGORIES:
        problems.append("label set differs from this code's CATEGORIES")
    if tuple(metadata.get("dense_names", ())) != signals.DENSE_NAMES:
        problems.append("dense feature names differ from this code's")
    if problems:
        raise ConfigError(f"{meta_path}: model does not match this router: " + "; ".join(problems))
    try:
        with np.load(model_dir / f"{name}.npz", allow_pickle=False) as data:
            arrays = {key: data[key] for key in scorer.ARRAYS}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{model_dir / name}.npz: cannot read the classifier arrays: {exc}") from None
    for key, shape in scorer.expected_shapes(arrays).items():
        if arrays[key].shape != shape:
            raise ConfigError(f"{meta_path}: array {key} has shape {arrays[key].shape}, expected {shape}")
    return scorer.ScoreModel(arrays, metadata)
