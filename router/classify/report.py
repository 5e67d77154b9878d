"""``router eval --report DIR``: the quality report as PNG figures and one self-contained HTML page.

Owns the figures (matplotlib, Agg backend, so no display is needed): the cost-vs-quality curves with the
shipped operating point, the held-out confusion matrix, a calibration diagram (predicted difficulty
against the human label) and the difficulty distribution per source. The page embeds every PNG (base64)
next to the headline tables, and names each figure file, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from router.classify.curves import routing_curve
from router.classify.schema import CATEGORIES
from router.classify.scorer import to_scale

FIGURES = MappingProxyType({
    "cost_quality.png": "Quality vs strong-call share (RouteLLM-style), shipped operating point marked",
    "confusion.png": "Category confusion matrix, natural held-out split (rows: label, normalised)",
    "calibration.png": "Calibration: predicted difficulty vs the human (annotator) label, held-out split",
    "difficulty_by_source.png": "Predicted difficulty per source, held-out split (labels alongside)",
})
_COLOURS = MappingProxyType({"new": "#1f77b4", "length": "#7f7f7f", "triage-local-v1": "#d62728"})


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cost_quality(report: dict[str, Any], model: Any, path: Path) -> None:
    plt = _pyplot()
    curves = report.get("curves", {})
    names = list(curves) or ["(no curves)"]
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        entry = curves.get(name)
        if entry is None:
            ax.text(0.5, 0.5, "curves skipped (--no-curves)", ha="center")
            continue
        weak, strong = np.array(entry["_outcomes"]["weak"]), np.array(entry["_outcomes"]["strong"])
        for who, scores in entry["_scores"].items():
            shares, quality = routing_curve(np.array(scores), weak, strong)
            apgr = entry["models"][who]["apgr"]
            ax.plot(shares, quality, label=f"{who} (APGR {apgr})", color=_COLOURS.get(who))
            if who == "new":
                # The shipped operating point: everything at or above the medium cut leaves the weak tier.
                share = float((np.array(scores) >= model.medium_at).mean())
                point = float(np.interp(share, shares, quality))
                ax.plot([share], [point], "o", color="black", zorder=5)
                ax.annotate(f"shipped cut: {share:.0%} strong", (share, point), textcoords="offset points", xytext=(8, -14))
        ax.axhline(strong.mean(), ls="--", lw=0.8, color="green", label="always strong")
        ax.axhline(weak.mean(), ls=":", lw=0.8, color="orange", label="always weak")
        ax.plot([0, 1], [weak.mean(), strong.mean()], lw=0.6, color="black", alpha=0.4, label="random")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("share of calls to the strong model (cost)")
        ax.set_ylabel("mean quality")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _confusion(report: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    matrix = np.array(report["natural_holdout"]["models"]["new"]["confusion"], dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(CATEGORIES)):
        for j in range(len(CATEGORIES)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(CATEGORIES)), CATEGORIES, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(CATEGORIES)), CATEGORIES, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    figures = report["natural_holdout"]["models"]["new"]
    ax.set_title(f"macro-F1 {figures['macro_f1']}, accuracy {figures['accuracy']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _calibration(report: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    held = report["natural_holdout"]
    y = np.array(held["_labels"]["difficulty"])
    predicted = np.array([to_scale(u) for u in held["_scores"]["new"]])
    edges = np.quantile(predicted, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, 9)
    xs = [predicted[bins == b].mean() for b in range(10) if (bins == b).any()]
    ys = [y[bins == b].mean() for b in range(10) if (bins == b).any()]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(predicted, y + np.random.default_rng(0).uniform(-0.2, 0.2, y.size), s=4, alpha=0.25, label="rows (jittered)")
    ax.plot(xs, ys, "o-", color="black", label="mean label per decile of the score")
    ax.plot([1, 10], [1, 10], "--", color="grey", lw=0.8, label="perfect calibration")
    ax.set_xlim(1, 8)
    ax.set_ylim(0.5, 9.5)
    ax.set_xlabel("predicted difficulty (1-10)")
    ax.set_ylabel("annotator difficulty (1-10)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _by_source(report: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    held = report["natural_holdout"]
    sources = np.array(held["_labels"]["source"])
    predicted = np.array([to_scale(u) for u in held["_scores"]["new"]])
    labels = np.array(held["_labels"]["difficulty"])
    names = sorted(set(sources.tolist()))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    positions = np.arange(len(names))
    ax.boxplot([predicted[sources == n] for n in names], positions=positions - 0.18, widths=0.3, showfliers=False)
    ax.boxplot(
        [labels[sources == n] for n in names], positions=positions + 0.18, widths=0.3, showfliers=False,
        boxprops={"color": "#d62728"}, medianprops={"color": "#d62728"},
    )
    ax.set_xticks(positions, names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("difficulty (1-10): predicted (black), label (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(report: dict[str, Any], out_dir: Path, model: Any) -> Path:
    """Write the four PNGs and ``index.html`` into ``out_dir``; returns the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _cost_quality(report, model, out_dir / "cost_quality.png")
    _confusion(report, out_dir / "confusion.png")
    _calibration(report, out_dir / "calibration.png")
    _by_source(report, out_dir / "difficulty_by_source.png")
    held = report["natural_holdout"]
    rows = [
        [name, f.get("spearman"), f.get("auc_hard_vs_easy"), f.get("macro_f1", "-"), f.get("accuracy", "-")]
        for name, f in held["models"].items()
    ]
    margins = [
        [name, key, m["margin"], m["ci95"]] for name, ms in held["margins"].items() for key, m in ms.items()
    ]
    curve_rows = [
        [set_name, who, f["apgr"], f["cpt50"], f["cpt80"], f["cost_cut_at_95"]]
        for set_name, entry in report.get("curves", {}).items()
        for who, f in entry["models"].items()
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Triage classifier quality report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:100%}</style>",
        "</head><body><h1>Triage classifier quality report</h1>",
        f"<p>Cut-offs (difficulty in [0, 1]): {html.escape(str(report.get('thresholds')))}; tier shares on the "
        f"held-out split: {html.escape(str(held.get('tier_shares')))}</p>",
        f"<h2>Natural held-out split ({held['rows']} rows)</h2>",
        _table(rows, ["model", "Spearman", "AUC (>=6 vs <=3)", "macro-F1", "accuracy"]),
        "<h3>Margin of the new model (bootstrap 95% interval)</h3>",
        _table(margins, ["over", "figure", "margin", "95% CI"]),
    ]
    loso = report.get("leave_one_source_out")
    if loso:
        parts.append("<h2>Leave-one-source-out</h2>")
        parts.append(
            _table(
                [[s, f["rows"], f["model"].get("macro_f1"), f["model"]["spearman"], f["length"]["spearman"]] for s, f in loso["per_source"].items()]
                + [["mean", "", loso["mean"]["model"]["macro_f1"], loso["mean"]["model"]["spearman"], loso["mean"]["length"]["spearman"]]],
                ["source left out", "rows", "macro-F1", "Spearman (model)", "Spearman (length)"],
            )
        )
    if curve_rows:
        parts.append("<h2>Weak/strong routing curves</h2>")
        parts.append(_table(curve_rows, ["set", "model", "APGR", "CPT(50%)", "CPT(80%)", "cost cut at 95%"]))
    parts.append("<h2>Figures</h2>")
    for name, caption in FIGURES.items():
        data = base64.b64encode((out_dir / name).read_bytes()).decode()
        parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,{data}'><figcaption>{name}: {html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    page = out_dir / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page
