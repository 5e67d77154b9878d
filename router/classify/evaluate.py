"""Quality of a local model: category accuracy and macro-F1, complexity accuracy and AUC, calibration.

Owns the metrics and the three evaluation sets: a held-out split of the benchmark rows, leave-one-source-out
(train without a source, test on it) and natural user prompts held out from training. Pure computation on
predictions; training for leave-one-source-out is delegated to ``train``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from router.classify.dataset import Row
from router.classify.local import LocalModel
from router.classify.schema import Classification

MIN_LOSO_ROWS = 150


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        mask = (confidence > low) & (confidence <= high)
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if labels.all() or not labels.any():
        return None  # undefined with one class present
    return round(float(roc_auc_score(labels, scores)), 4)


def metrics(rows: Sequence[Row], predictions: Sequence[Classification]) -> dict[str, Any]:
    y_cat = [r.category for r in rows]
    p_cat = [p.category for p in predictions]
    y_cx = np.array([r.tier for r in rows])
    difficulty = np.array([p.difficulty for p in predictions])
    confidence = np.array([p.scores[p.category] for p in predictions])
    correct = np.array([a == b for a, b in zip(y_cat, p_cat)], dtype=float)
    present = sorted(set(y_cat))
    return {
        "rows": len(rows),
        "category_accuracy": round(float(accuracy_score(y_cat, p_cat)), 4),
        "category_macro_f1": round(float(f1_score(y_cat, p_cat, labels=present, average="macro", zero_division=0)), 4),
        "complexity_accuracy": round(float(np.mean(y_cx == np.array([p.complexity for p in predictions]))), 4),
        "complexity_high_auc": _auc(y_cx == "high", difficulty),
        "complexity_medium_plus_auc": _auc(y_cx != "low", difficulty),
        "calibration_error": round(expected_calibration_error(confidence, correct), 4),
        "high_rows": int((y_cx == "high").sum()),
    }


def predict(model: LocalModel, rows: Sequence[Row]) -> list[Classification]:
    return [model.classify(r.request()) for r in rows]


def natural_holdout(rows: Sequence[Row]) -> list[Row]:
    """Natural prompts the shipped model never trains on: every non-trainable natural row."""
    return [r for r in rows if r.natural and not r.trainable]


def benchmark_holdout(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if not r.natural and r.split == "test"]


def loso_sources(rows: Sequence[Row]) -> list[str]:
    counts: dict[str, int] = {}
    for row in rows:
        if not row.natural:
            counts[row.source] = counts.get(row.source, 0) + 1
    return sorted(source for source, n in counts.items() if n >= MIN_LOSO_ROWS)


def leave_one_source_out(
    rows: Sequence[Row], train: Callable[[Sequence[Row]], LocalModel], sources: Sequence[str]
) -> dict[str, Any]:
    """Train without each source and test on all of its rows; report per source and the mean."""
    per_source: dict[str, Any] = {}
    for source in sources:
        model = train([r for r in rows if r.trainable and r.source != source])
        held = [r for r in rows if r.source == source]
        per_source[source] = metrics(held, predict(model, held))
    mean = {
        key: round(float(np.mean([m[key] for m in per_source.values() if m[key] is not None])), 4)
        for key in ("category_accuracy", "category_macro_f1", "complexity_accuracy", "calibration_error")
    }
    return {"mean": mean, "per_source": per_source}


def agreement(model: LocalModel, rows: Sequence[Row]) -> dict[str, Any]:
    """How often the local model agrees with labels Haiku gave (rows from the learning sink)."""
    if not rows:
        return {"rows": 0}
    predictions = predict(model, rows)
    return {
        "rows": len(rows),
        "category_agreement": round(float(np.mean([p.category == r.category for p, r in zip(predictions, rows)])), 4),
        "complexity_agreement": round(float(np.mean([p.complexity == r.tier for p, r in zip(predictions, rows)])), 4),
    }
