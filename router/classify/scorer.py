"""The v2 local model at serving time: task category and a continuous difficulty, from plain arrays.

Owns artifact format 2 (``<name>.npz`` loaded with ``allow_pickle=False`` + ``<name>.json``) and its fast
path. Training (``fit``) builds the same two models with scikit-learn: a multinomial logistic regression for
the category and a ridge regression for difficulty on RUBRIC_v2's 1-10 scale, over the same features
(``signals``: hashed words, dense structure, the task's mean word vector). The fast path computes what the
scikit-learn pipelines would (a test holds them equal) in one gather and three small products.

Scale: the model scores difficulty on the rubric's 1-10 scale; ``Classification.difficulty`` is that score
mapped linearly onto [0, 1] (``to_unit``), the range policy rules and the API already use. Complexity cuts
the unit score at the thresholds recorded in the metadata (set from a target traffic mix).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from router.classify.embedding import WordTable
from router.classify.schema import CATEGORIES, Classification, complexity_for
from router.classify.signals import N_DENSE, N_HASHED, Signals, signals

ARTIFACT_FORMAT = 2
ARRAYS = ("word_rows", "dense_rows", "embed_rows", "vocab_hashes", "vocab_tokens", "vocab_vectors")
N_OUT = len(CATEGORIES) + 1
"""Output columns: the 12 category logits, then the raw difficulty score."""
SCALE_MIN, SCALE_MAX = 1.0, 10.0


def to_unit(score: float) -> float:
    """A 1-10 rubric score as the [0, 1] ``difficulty`` (clipped): 1 -> 0, 10 -> 1."""
    return min(max((score - SCALE_MIN) / (SCALE_MAX - SCALE_MIN), 0.0), 1.0)


def to_scale(unit: float) -> float:
    """The inverse of ``to_unit``: a [0, 1] difficulty on the 1-10 rubric scale."""
    return SCALE_MIN + unit * (SCALE_MAX - SCALE_MIN)


class ScoreModel:
    """Arrays plus thresholds. ``classify`` is the fast path; ``outputs`` exposes its parts for tests."""

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
        self.metadata = metadata
        self.word_rows = np.ascontiguousarray(arrays["word_rows"], dtype=np.float64)
        self.dense_rows = np.ascontiguousarray(arrays["dense_rows"], dtype=np.float64)
        """``N_DENSE`` rows of dense coefficients, then one row of intercepts."""
        self.embed_rows = np.ascontiguousarray(arrays["embed_rows"], dtype=np.float64)
        self.table = WordTable(arrays["vocab_hashes"], arrays["vocab_tokens"], arrays["vocab_vectors"])
        thresholds = metadata["thresholds"]
        self.medium_at = float(thresholds["medium_at"])
        self.high_at = float(thresholds["high_at"])
        self.residual_sd = float(metadata.get("residual_sd", 1.0))
        """Typical error of the score on the 1-10 scale (held-out), for the confidence of a tier cut."""

    def raw(self, sig: Signals) -> np.ndarray:
        """The 13 outputs (category logits, difficulty score) of a request's features."""
        z = np.dot(sig.values, self.word_rows.take(sig.indices, axis=0)) if sig.indices.size else np.zeros(N_OUT)
        z += np.dot(sig.dense, self.dense_rows[:-1])
        z += self.dense_rows[-1]
        z += np.dot(self.table.mean_vector(sig.word_hashes), self.embed_rows)
        return z

    def outputs(self, body: dict[str, Any]) -> tuple[list[float], float]:
        """(category probabilities in ``CATEGORIES`` order, difficulty score on the 1-10 scale, unclipped)."""
        *logits, score = self.raw(signals(body)).tolist()
        top = max(logits)
        exp = [math.exp(logit - top) for logit in logits]
        total = sum(exp)
        return [e / total for e in exp], score

    def classify(self, body: dict[str, Any]) -> Classification:
        probs, score = self.outputs(body)
        top = max(probs)
        best = probs.index(top)
        difficulty = to_unit(score)
        complexity = complexity_for(difficulty, self.medium_at, self.high_at)
        # How sure the model is of the side of the nearest tier cut: the score's error is about
        # residual_sd on the 1-10 scale, so a score far from every cut is a confident tier.
        gap = min(abs(score - to_scale(self.medium_at)), abs(score - to_scale(self.high_at)))
        side = 0.5 * (1.0 + math.erf(gap / (self.residual_sd * math.sqrt(2.0))))
        return Classification(
            category=CATEGORIES[best],
            complexity=complexity,
            difficulty=round(difficulty, 6),
            confidence=round(min(top, side), 6),
            stage="local",
            scores={name: round(p, 6) for name, p in zip(CATEGORIES, probs)},
        )


def expected_shapes(arrays: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    n, dims = arrays["vocab_vectors"].shape
    return {
        "word_rows": (N_HASHED, N_OUT),
        "dense_rows": (N_DENSE + 1, N_OUT),
        "embed_rows": (dims, N_OUT),
        "vocab_hashes": (n,),
        "vocab_tokens": (n,),
    }
