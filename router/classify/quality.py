"""The quality report of the difficulty model against its baselines, on data it was not trained on.

Owns the figures of ``router eval`` and ``router train``: on the natural held-out split, category macro-F1,
accuracy and confusion matrix, difficulty Spearman and AUC (difficulty >= 6 vs <= 3); per source left out of
training (leave-one-source-out); RouteLLM-style curves on the weak/strong outcome sets; and bootstrap
intervals on the new model's margin over each baseline. Baselines: prompt length alone and the previously
shipped model. Pure computation on scores; training for leave-one-source-out is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from router.classify.curves import OutcomeSet, apgr, bodies_for, curve_figures
from router.classify.features import segments
from router.classify.natural import NaturalRow
from router.classify.schema import CATEGORIES

HARD_AT, EASY_AT = 6.0, 3.0
BOOTSTRAP = 1000

Scorer = Callable[[Sequence[dict[str, Any]]], tuple[np.ndarray, list[str] | None]]
"""Bodies -> (difficulty score, higher is harder; predicted categories or None)."""


def length_scorer(bodies: Sequence[dict[str, Any]]) -> tuple[np.ndarray, None]:
    """Prompt length alone: characters of every turn's text."""
    return np.array([float(segments(b)[4]) for b in bodies]), None


def model_scorer(model: Any, progress: Callable[[Sequence[Any], str], Any] | None = None, label: str = "") -> Scorer:
    def score(bodies: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
        items = progress(bodies, label) if progress else bodies
        results = [model.classify(b) for b in items]
        return np.array([r.difficulty for r in results]), [r.category for r in results]

    return score


def spearman(y: np.ndarray, s: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties): Pearson's r of the ranks. 0 when either side is constant."""
    ry, rs = rankdata(y), rankdata(s)
    ry -= ry.mean()
    rs -= rs.mean()
    denominator = float(np.sqrt(np.dot(ry, ry) * np.dot(rs, rs)))
    return float(np.dot(ry, rs)) / denominator if denominator > 0 else 0.0


def hard_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """AUC of the score separating difficulty >= 6 from <= 3 (Mann-Whitney, ties count half)."""
    mask = (y >= HARD_AT) | (y <= EASY_AT)
    hard = y[mask] >= HARD_AT
    n_hard = int(hard.sum())
    n_easy = hard.size - n_hard
    if n_hard == 0 or n_easy == 0:
        return None
    ranks = rankdata(s[mask])
    return float((ranks[hard].sum() - n_hard * (n_hard + 1) / 2) / (n_hard * n_easy))


def difficulty_figures(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    auc = hard_auc(y, s)
    return {
        "spearman": round(spearman(y, s), 4),
        "auc_hard_vs_easy": None if auc is None else round(auc, 4),
        "hard_rows": int((y >= HARD_AT).sum()),
    }


def category_figures(y: Sequence[str], p: Sequence[str]) -> dict[str, Any]:
    present = sorted(set(y))
    return {
        "macro_f1": round(float(f1_score(y, p, labels=present, average="macro", zero_division=0)), 4),
        "accuracy": round(float(accuracy_score(y, p)), 4),
        "confusion": confusion_matrix(y, p, labels=list(CATEGORIES)).tolist(),
    }


def bootstrap_margin(
    metric: Callable[..., float | None], arrays: Sequence[np.ndarray], new: np.ndarray, base: np.ndarray,
    n: int = BOOTSTRAP, seed: int = 0,
) -> dict[str, float]:
    """The margin metric(new) - metric(base) and its 95% percentile interval over resampled rows."""
    rng = np.random.default_rng(seed)
    size = len(new)
    a, b = metric(*arrays, new), metric(*arrays, base)
    point = a - b if a is not None and b is not None else float("nan")
    margins = []
    for _ in range(n):
        pick = rng.integers(0, size, size)
        a, b = metric(*(x[pick] for x in arrays), new[pick]), metric(*(x[pick] for x in arrays), base[pick])
        if a is not None and b is not None and np.isfinite(a) and np.isfinite(b):
            margins.append(a - b)
    if not margins or not np.isfinite(point):
        return {"margin": None, "ci95": [None, None]}  # undefined here (e.g. no hard rows in the sample)
    low, high = np.percentile(margins, [2.5, 97.5])
    return {"margin": round(float(point), 4), "ci95": [round(float(low), 4), round(float(high), 4)]}


def _auc_or_nan(y: np.ndarray, s: np.ndarray) -> float:
    value = hard_auc(y, s)
    return float("nan") if value is None else value


def natural_report(
    rows: Sequence[NaturalRow], scorers: dict[str, Scorer], new: str, bootstrap: int = BOOTSTRAP
) -> dict[str, Any]:
    """Held-out figures per scorer, margins of ``new`` over the others, and the per-source breakdown."""
    y = np.array([r.difficulty for r in rows])
    bodies = [r.body for r in rows]
    labels = [r.category for r in rows]
    scores: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {"rows": len(rows), "models": {}, "margins": {}, "per_source": {}}
    for name, scorer in scorers.items():
        s, cats = scorer(bodies)
        scores[name] = s
        figures = difficulty_figures(y, s)
        if cats is not None:
            figures.update(category_figures(labels, cats))
        out["models"][name] = figures
    for name in scorers:
        if name == new:
            continue
        out["margins"][name] = {
            "spearman": bootstrap_margin(spearman, [y], scores[new], scores[name], n=bootstrap),
            "auc_hard_vs_easy": bootstrap_margin(_auc_or_nan, [y], scores[new], scores[name], n=bootstrap),
        }
    sources = sorted({r.source for r in rows})
    src = np.array([r.source for r in rows])
    for source in sources:
        mask = src == source
        out["per_source"][source] = {name: difficulty_figures(y[mask], s[mask]) for name, s in scores.items()}
    out["_scores"] = {name: s.tolist() for name, s in scores.items()}
    out["_labels"] = {"difficulty": y.tolist(), "source": src.tolist()}
    return out


def curve_report(
    sets: Sequence[OutcomeSet], scorers: dict[str, Scorer], new: str, weak_price: float, strong_price: float,
    bootstrap: int = 300,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for outcome in sets:
        bodies = bodies_for(outcome.prompts)
        scores = {name: scorer(bodies)[0] for name, scorer in scorers.items()}
        entry: dict[str, Any] = {
            "weak_model": outcome.weak_model,
            "strong_model": outcome.strong_model,
            "models": {name: curve_figures(s, outcome, weak_price, strong_price) for name, s in scores.items()},
            "margins": {},
        }
        for name in scorers:
            if name != new:
                entry["margins"][name] = {
                    "apgr": bootstrap_margin(
                        lambda w, st, s: apgr(s, w, st), [outcome.weak, outcome.strong], scores[new], scores[name], n=bootstrap
                    )
                }
        entry["_scores"] = {name: s.tolist() for name, s in scores.items()}
        entry["_outcomes"] = {"weak": outcome.weak.tolist(), "strong": outcome.strong.tolist()}
        out[outcome.name] = entry
    return out


def loso_report(
    rows: Sequence[NaturalRow], families: Sequence[str], train: Callable[[Sequence[NaturalRow]], Any],
    progress: Callable[[Sequence[Any], str], Any] | None = None,
) -> dict[str, Any]:
    """Train without each source family and test on all of its rows; length alone alongside."""
    per_source: dict[str, Any] = {}
    for family in progress(list(families), "leave-one-source-out") if progress else families:
        model = train([r for r in rows if r.family != family])
        held = [r for r in rows if r.family == family]
        y = np.array([r.difficulty for r in held])
        s, cats = model_scorer(model)([r.body for r in held])
        length = length_scorer([r.body for r in held])[0]
        per_source[family] = {
            "rows": len(held),
            "model": {**difficulty_figures(y, s), **_no_confusion(category_figures([r.category for r in held], cats))},
            "length": difficulty_figures(y, length),
        }
    return {"per_source": per_source, "mean": loso_means(per_source)}


def _no_confusion(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in figures.items() if k != "confusion"}


def loso_means(per_source: dict[str, Any]) -> dict[str, Any]:
    def mean(who: str, key: str) -> float | None:
        values = [p[who][key] for p in per_source.values() if p[who].get(key) is not None]
        return round(float(np.mean(values)), 4) if values else None

    return {
        "model": {key: mean("model", key) for key in ("macro_f1", "accuracy", "spearman", "auc_hard_vs_easy")},
        "length": {key: mean("length", key) for key in ("spearman", "auc_hard_vs_easy")},
    }


def tier_shares(units: np.ndarray, medium_at: float, high_at: float) -> dict[str, float]:
    return {
        "low": round(float((units < medium_at).mean()), 4),
        "medium": round(float(((units >= medium_at) & (units < high_at)).mean()), 4),
        "high": round(float((units >= high_at).mean()), 4),
    }


def public(report: Any) -> Any:
    """The report without the per-row arrays kept for plotting (keys starting with "_")."""
    if isinstance(report, dict):
        return {k: public(v) for k, v in report.items() if not str(k).startswith("_")}
    return report
