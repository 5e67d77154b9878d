"""The v2 local model at serving time: task category and a continuous difficulty, from plain arrays.

Owns artifact format 2 (``<name>.npz`` loaded with ``allow_pickle=False`` + ``<name>.json``) and its fast
path. Training (``fit``) builds the same two models with scikit-learn: a multinomial logistic regression for
the category and a ridge regression for difficulty on RUBRIC_v2's 1-10 scale, over the same features
(``signals``: hashed words, dense structure, the task's mean word vector). The fast path computes what the
scikit-learn pipelines would (a test holds them equal) in one gather and three small products.

Scale: a ridge regression predicts the conditional mean of the label, which squeezes its scores towards the
middle (few requests score above 5 even where a 7 is likely). A monotone map fitted at training time
(``calib_x`` -> ``calib_y``, out-of-fold scores against the label distribution) spreads them so that a
score is as frequent on natural traffic as the annotators' label of the same value: "6" means the top ~2%,
as in RUBRIC_v2's labels. Being strictly increasing, it leaves every ranking figure unchanged. The Haiku
stage answers on the same rubric scale, so both stages share the cut-offs and policy difficulty ranges.
``Classification.difficulty`` is the mapped score placed linearly on [0, 1] (``to_unit``), the range policy
rules and the API use. Complexity cuts it at the thresholds in the metadata (set from a target mix).
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from router.classify.embedding import WordTable
from router.classify.schema import CATEGORIES, Classification, complexity_for
from router.classify.signals import N_DENSE, N_HASHED, Signals, signals

ARTIFACT_FORMAT = 2
ARRAYS = ("word_rows", "dense_rows", "embed_rows", "vocab_hashes", "vocab_tokens", "vocab_vectors", "calib_x", "calib_y")
N_OUT = len(CATEGORIES) + 1
"""Output columns: the 12 category logits, then the raw difficulty score."""
SCALE_MIN, SCALE_MAX = 1.0, 10.0


def to_unit(score: float) -> float:
    """A 1-10 rubric score as the [0, 1] ``difficulty`` (clipped): 1 -> 0, 10 -> 1."""
    return min(max((score - SCALE_MIN) / (SCALE_MAX - SCALE_MIN), 0.0), 1.0)


def to_scale(unit: float) -> float:
    """The inverse of ``to_unit``: a [0, 1] difficulty on the 1-10 rubric scale."""
    return SCALE_MIN + unit * (SCALE_MAX - SCALE_MIN)


def calibrate(raw: float, xs: list[float], ys: list[float]) -> float:
    """The monotone map: piecewise linear through the knots, slope 1 beyond the ends (strictly increasing
    everywhere, so the hardest requests keep their order)."""
    if raw <= xs[0]:
        return ys[0] + (raw - xs[0])
    if raw >= xs[-1]:
        return ys[-1] + (raw - xs[-1])
    i = bisect.bisect_right(xs, raw)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (raw - x0) * (y1 - y0) / (x1 - x0)


class ScoreModel:
    """Arrays plus thresholds. ``classify`` is the fast path; ``outputs`` exposes its parts for tests."""

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
        self.metadata = metadata
        self.word_rows = np.ascontiguousarray(arrays["word_rows"], dtype=np.float64)
        self.dense_rows = np.ascontiguousarray(arrays["dense_rows"], dtype=np.float64)
        """``N_DENSE`` rows of dense coefficients, then one row of intercepts."""
        self.embed_rows = np.ascontiguousarray(arrays["embed_rows"], dtype=np.float64)
        self.table = WordTable(arrays["vocab_hashes"], arrays["vocab_tokens"], arrays["vocab_vectors"])
        self.calib_x = np.asarray(arrays["calib_x"], dtype=np.float64).tolist()
        self.calib_y = np.asarray(arrays["calib_y"], dtype=np.float64).tolist()
        thresholds = metadata["thresholds"]
        self.medium_at = float(thresholds["medium_at"])
        self.high_at = float(thresholds["high_at"])
        self.residual_sd = float(metadata.get("residual_sd", 1.0))
        """Typical error of the mapped score on the 1-10 scale (out-of-fold), for the confidence of a tier cut."""

    def raw(self, sig: Signals) -> np.ndarray:
        """The 13 outputs (category logits, difficulty score) of a request's features."""
        z = np.dot(sig.values, self.word_rows.take(sig.indices, axis=0)) if sig.indices.size else np.zeros(N_OUT)
        z += np.dot(sig.dense, self.dense_rows[:-1])
        z += self.dense_rows[-1]
        z += np.dot(self.table.mean_vector(sig.word_hashes), self.embed_rows)
        return z

    def outputs(self, body: dict[str, Any]) -> tuple[list[float], float]:
        """(category probabilities in ``CATEGORIES`` order, raw difficulty score: the ridge's own output)."""
        *logits, score = self.raw(signals(body)).tolist()
        top = max(logits)
        exp = [math.exp(logit - top) for logit in logits]
        total = sum(exp)
        return [e / total for e in exp], score

    def score(self, raw: float) -> float:
        """A raw score on the rubric's 1-10 scale (the monotone map), unclipped."""
        return calibrate(raw, self.calib_x, self.calib_y)

    def classify(self, body: dict[str, Any]) -> Classification:
        probs, raw = self.outputs(body)
        score = calibrate(raw, self.calib_x, self.calib_y)
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
        "calib_y": arrays["calib_x"].shape,
    }
