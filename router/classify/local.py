"""The local classifier at serving time: plain arrays, a JSON sidecar, and a fast path with no scikit-learn.

Owns the artifact format (``<name>.npz`` arrays loaded with ``allow_pickle=False`` + ``<name>.json``
metadata) and inference. Training builds the same model with scikit-learn (``train``); the fast path here
computes exactly what scikit-learn's ``predict_proba`` would (a test holds the two equal) without its
per-call validation.

Model: multinomial logistic regression for the category; two binary logistic regressions for complexity
(``>= medium`` and ``high``) over the same features plus the category probabilities. Difficulty is the
mean of the two probabilities; complexity cuts it at thresholds recorded in the metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from router.classify.features import FEATURE_VERSION, N_FEATURES, featurize
from router.classify.schema import CATEGORIES, Classification, complexity_for
from router.errors import ConfigError

ARTIFACT_FORMAT = 1
DEFAULT_NAME = "triage-local-v1"
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
        # Column-major copy: gathering a request's few hundred feature columns is then contiguous per feature.
        self._cat_by_feature = np.ascontiguousarray(self.cat_coef.T)
        self._med_words, self._med_cats = self.med_coef[:N_FEATURES], self.med_coef[N_FEATURES:]
        self._high_words, self._high_cats = self.high_coef[:N_FEATURES], self.high_coef[N_FEATURES:]
        thresholds = metadata["thresholds"]
        self.medium_at = float(thresholds["medium_at"])
        self.high_at = float(thresholds["high_at"])

    def probabilities(self, body: dict[str, Any]) -> tuple[np.ndarray, float, float]:
        """(category probabilities, P(complexity >= medium), P(complexity == high))."""
        indices, values = featurize(body)
        idx = np.asarray(indices, dtype=np.intp)
        val = np.asarray(values, dtype=np.float64)
        logits = val @ self._cat_by_feature[idx] + self.cat_intercept
        logits -= logits.max()
        exp = np.exp(logits)
        probs = exp / exp.sum()
        med = self.med_intercept + float(val @ self._med_words[idx]) + float(probs @ self._med_cats)
        high = self.high_intercept + float(val @ self._high_words[idx]) + float(probs @ self._high_cats)
        return probs, _sigmoid(med), _sigmoid(high)

    def classify(self, body: dict[str, Any]) -> Classification:
        probs, p_med, p_high = self.probabilities(body)
        best = int(probs.argmax())
        difficulty = (p_med + p_high) / 2.0
        complexity = complexity_for(difficulty, self.medium_at, self.high_at)
        # How sure the model is of what routing uses: the category and the side of the medium cut.
        side = max(p_med, 1.0 - p_med)
        confidence = float(min(probs[best], side))
        return Classification(
            category=CATEGORIES[best],
            complexity=complexity,
            difficulty=round(difficulty, 6),
            confidence=round(confidence, 6),
            stage="local",
            scores={name: round(float(p), 6) for name, p in zip(CATEGORIES, probs)},
        )


def _sigmoid(z: float) -> float:
    if z >= 0:
        return float(1.0 / (1.0 + np.exp(-z)))
    e = np.exp(z)
    return float(e / (1.0 + e))


def save(model_dir: Path, name: str, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stored = {key: np.asarray(arrays[key], dtype=np.float32) for key in ARRAYS}
    np.savez_compressed(model_dir / f"{name}.npz", **stored)
    meta = {**metadata, "artifact_format": ARTIFACT_FORMAT, "arrays": {k: list(v.shape) for k, v in stored.items()}}
    (model_dir / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return model_dir / f"{name}.npz"


def load(model_dir: Path, name: str = DEFAULT_NAME) -> LocalModel:
    """Load and check an artifact. A mismatch with this code's features or labels fails loudly."""
    meta_path = Path(model_dir) / f"{name}.json"
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{meta_path}: cannot read the classifier metadata: {exc}") from None
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
