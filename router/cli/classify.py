"""``router train``, ``router eval``, ``router classify`` and ``router calibrate``.

Owns the command-line side of the classifier: argument parsing, reading JSON lines, printing reports.
The work itself is in ``train``, ``evaluate``, ``local`` and ``cascade``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import msgspec
import numpy as np

from router.classify.natural import NATURAL_V2 as NATURAL_FILE


def _default_data() -> Path:
    """``ROUTER_DATA_DIR`` or ``../shared/data``, read when the parser is built (never at import)."""
    return Path(os.environ.get("ROUTER_DATA_DIR", "../shared/data"))

DEFAULT_MODELS = Path("models")
DATA_HELP = "folder holding labeled_natural_v2/ and the other labelled sets (env ROUTER_DATA_DIR; default ../shared/data)"
DEFAULT_NAME = "triage-local-v2"
V1_NAME = "triage-local-v1"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="train the local classifier from the shared data")
    p.add_argument("--data", type=Path, default=_default_data(), help=DATA_HELP)
    p.add_argument("--out", type=Path, default=DEFAULT_MODELS, help="model directory (default models/)")
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("--extra", type=Path, action="append", default=[], help="Haiku-labelled JSONL to fold in")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loso", action="store_true", help="also run leave-one-source-out (one fit per source)")
    p.add_argument("--no-curves", action="store_true", help="skip the weak/strong curves in the recorded report")
    p.add_argument("--pair-weight", type=float, default=None, help="weight of benchmark difference rows (default 0.3)")
    p.add_argument("--max-iter", type=int, default=None, help="iterations of the category model's solver (default 300)")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for the margins' intervals")

    p = sub.add_parser("eval", help="print the classifier's quality report against its baselines")
    p.add_argument("--data", type=Path, default=_default_data(), help=DATA_HELP)
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("--baseline", default=V1_NAME, help="the previously shipped model to compare with")
    p.add_argument("--policies", type=Path, default=Path("policies"), help="for the tier prices (tiers.yaml)")
    p.add_argument("--report", type=Path, default=None, help="write PNG figures and an HTML page to this folder")
    p.add_argument("--no-curves", action="store_true", help="skip the weak/strong curves (faster)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for the margins' intervals")
    p.add_argument("--extra", type=Path, action="append", default=[], help="Haiku-labelled JSONL: report agreement")

    p = sub.add_parser("classify", help="classify JSON lines from stdin (request bodies or {\"prompt\": ...})")
    p.add_argument("--local-only", action="store_true", help="never call Haiku")
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--policies", type=Path, default=Path("policies"))

    p = sub.add_parser(
        "calibrate",
        help="expected tier shares and cost cut vs always-Opus on natural prompts; with --target-share, the "
        "confidence threshold for that share of Haiku calls (requests on stdin)",
    )
    p.add_argument("--target-share", type=float, default=None, help="share of requests to send to Haiku, 0..1")
    p.add_argument("--data", type=Path, default=_default_data(), help=DATA_HELP)
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--policies", type=Path, default=Path("policies"), help="for the tier prices (tiers.yaml)")
    p.add_argument("--name", default=DEFAULT_NAME)




def run(args: argparse.Namespace) -> int:
    handler = {"train": _train, "eval": _eval, "classify": _classify, "calibrate": _calibrate}[args.command]
    reads_data = args.command in ("train", "eval") or (args.command == "calibrate" and args.target_share is None)
    if reads_data and not (args.data / NATURAL_FILE).is_file():
        print(
            f"router: no labelled data at {args.data} (expected {args.data / NATURAL_FILE}); "
            "point at it with --data DIR or ROUTER_DATA_DIR",
            file=sys.stderr,
        )
        return 2
    return handler(args)


def _vocabulary(data_dir: Path, rows: Any) -> list[str]:
    """Words for the embedding table: those seen at least twice in training text (labels unused) and in the
    combined table's trainable prompts (never AlpacaEval, eval-only rows, RouteLLM's evaluation prompts, or Arena-Hard, whose prompts are
    also natural rows and may be held out)."""
    import collections
    import gzip

    from router.classify.dataset import COMBINED
    from router.classify.features import _tokens

    counts: collections.Counter[bytes] = collections.Counter()
    for row in rows:
        for message in row.body["messages"]:
            counts.update(_tokens(str(message["content"])))
    combined = Path(data_dir) / COMBINED
    if combined.exists():
        with gzip.open(combined, "rt", encoding="utf-8") as handle:
            for line in handle:
                raw = json.loads(line)
                if raw["source"] in ("alpaca_eval", "arena_hard_v01") or raw["source"].startswith("routellm") or raw.get("split_hint") != "train":
                    continue
                counts.update(_tokens(raw["text"]))
    return sorted(w.decode() for w, n in counts.items() if n >= 2)


def _extra_rows(paths: list[Path]) -> list[Any]:
    """Haiku-labelled learning-sink rows as natural rows (their difficulty back on the 1-10 scale)."""
    from router.classify.dataset import load_extra
    from router.classify.natural import NaturalRow
    from router.classify.scorer import to_scale

    rows = []
    for path in paths:
        for row in load_extra(path):
            rows.append(
                NaturalRow(
                    id=row.id, source="haiku_labelled", conversation=row.id, body=row.request(), text=row.text,
                    category=row.category, difficulty=to_scale(row.difficulty),
                )
            )
    return rows


def _train(args: argparse.Namespace) -> int:
    from router.classify import natural, quality
    from router.classify.embedding import WordTable, build_table
    from router.classify.fit import TrainConfig, benchmark_pairs, build_model, featurize_matrix, pair_matrix, progress, trainer
    from router.classify.local import save_v2

    started = time.monotonic()
    config = TrainConfig(seed=args.seed)
    if args.pair_weight is not None:
        config = msgspec.structs.replace(config, pair_weight=args.pair_weight)
    if args.max_iter is not None:
        config = msgspec.structs.replace(config, max_iter=args.max_iter)
    rows = natural.load_natural(args.data)
    train_rows, held = natural.split(rows)
    extra = _extra_rows(args.extra)
    train_rows = train_rows + extra
    table_arrays, provenance = build_table(_vocabulary(args.data, train_rows))
    table = WordTable(table_arrays["vocab_hashes"], table_arrays["vocab_tokens"], table_arrays["vocab_vectors"])
    sources: dict[str, int] = {}
    for row in train_rows:
        sources[row.source] = sources.get(row.source, 0) + 1
    meta = {
        "training_data": {
            "labeled_natural_v2_sha256": natural.natural_hash(args.data),
            "rows": len(train_rows),
            "rows_by_source": dict(sorted(sources.items())),
            "held_out": f"{natural.HELD_OUT_SHARE:.0%} of each source (seed {natural.SPLIT_SEED}), by conversation",
            "excluded": "alpaca_eval (CC BY-NC 4.0: evaluation only), the held-out split; difficulty also skips "
            "Dolly rows whose passage is missing",
            "extra_files": [str(p) for p in args.extra],
        },
        "embedding": provenance,
        "attribution": "labeled_natural_v2: Chatbot Arena prompts CC BY 4.0, OpenAssistant Apache-2.0, "
        "Dolly CC BY-SA 3.0, WildChat ODC-BY, Natural Questions CC BY-SA 3.0, Arena-Hard Apache-2.0",
    }
    x = featurize_matrix([r.body for r in train_rows], table, "training features")
    pairs = benchmark_pairs(args.data, config)
    pairs_x = pair_matrix(pairs, table) if pairs else None
    model, arrays, metadata = build_model(train_rows, config, table, table_arrays, meta, x, pairs, pairs_x)
    _log(f"trained on {len(train_rows)} rows in {time.monotonic() - started:.0f}s")
    report = _report(
        args.data, model, _baseline(args.out, V1_NAME), Path("policies"), curves=not args.no_curves, bootstrap=args.bootstrap
    )
    if args.loso:
        report["leave_one_source_out"] = quality.loso_report(
            train_rows, natural.families(train_rows), trainer(config, table, table_arrays, pairs), progress
        )
    metadata["evaluation"] = quality.public(report)
    path = save_v2(args.out, args.name, arrays, metadata)
    _log(f"wrote {path} and its .json sidecar in {time.monotonic() - started:.0f}s")
    _print_report(quality.public(report))
    return 0


def _baseline(models: Path, name: str) -> Any:
    from router.classify.local import load
    from router.errors import ConfigError

    try:
        return load(models, name)
    except ConfigError:
        return None


def _report(data: Path, model: Any, baseline: Any, policies: Path, *, curves: bool, bootstrap: int = 1000) -> dict[str, Any]:
    """Held-out natural figures and (unless ``curves`` is off) the weak/strong curves, for the model, prompt
    length alone and the baseline model."""
    from router.classify import curves as curve_sets
    from router.classify import natural, quality
    from router.classify.fit import progress

    rows = natural.load_natural(data)
    _, held = natural.split(rows)
    scorers: dict[str, Any] = {"length": quality.length_scorer}
    if baseline is not None:
        scorers[V1_NAME] = quality.model_scorer(baseline, progress, "baseline model")
    scorers["new"] = quality.model_scorer(model, progress, "new model")
    report: dict[str, Any] = {
        "thresholds": model.metadata["thresholds"],
        "natural_holdout": quality.natural_report(held, scorers, "new", bootstrap),
    }
    units = np.array(report["natural_holdout"]["_scores"]["new"])
    report["natural_holdout"]["tier_shares"] = quality.tier_shares(units, model.medium_at, model.high_at)
    if curves:
        prices = curve_sets.tier_prices(policies / "tiers.yaml")
        report["curves"] = quality.curve_report(
            curve_sets.load_outcome_sets(data), scorers, "new", prices["haiku"], prices["sonnet"], max(bootstrap // 3, 20)
        )
        report["curves_pricing"] = "weak -> haiku tier, strong -> sonnet tier, prices from policies/tiers.yaml"
    return report


def _eval(args: argparse.Namespace) -> int:
    from router.classify import quality
    from router.classify.local import load

    model = load(args.models, args.name)
    baseline = _baseline(args.models, args.baseline) if args.baseline != args.name else None
    report = _report(args.data, model, baseline, args.policies, curves=not args.no_curves, bootstrap=args.bootstrap)
    recorded = model.metadata.get("evaluation", {})
    if "leave_one_source_out" in recorded:
        report["leave_one_source_out"] = recorded["leave_one_source_out"]
    for path in args.extra:
        report.setdefault("haiku_agreement", {})[str(path)] = _agreement(model, path)
    if args.report is not None:
        from router.classify.report import write_report

        page = write_report(report, args.report, model)
        _log(f"wrote {page}")
    public = quality.public(report)
    if args.json:
        print(json.dumps(public, indent=2))
    else:
        print(f"model {args.name}: thresholds {model.metadata['thresholds']}")
        _print_report(public)
    return 0


def _agreement(model: Any, path: Path) -> dict[str, Any]:
    from router.classify.dataset import load_extra

    rows = load_extra(path)
    if not rows:
        return {"rows": 0}
    predictions = [model.classify(r.request()) for r in rows]
    return {
        "rows": len(rows),
        "category_agreement": round(float(np.mean([p.category == r.category for p, r in zip(predictions, rows)])), 4),
        "complexity_agreement": round(float(np.mean([p.complexity == r.tier for p, r in zip(predictions, rows)])), 4),
    }


def _print_report(report: dict[str, Any]) -> None:
    held = report["natural_holdout"]
    print(f"natural held-out split: {held['rows']} rows")
    for name, figures in held["models"].items():
        shown = {k: v for k, v in figures.items() if k != "confusion"}
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    for name, margins in held["margins"].items():
        for key, value in margins.items():
            print(f"  margin of new over {name} on {key}: {value['margin']} (95% CI {value['ci95']})")
    if "tier_shares" in held:
        print(f"  tier shares (new): {held['tier_shares']}")
    loso = report.get("leave_one_source_out")
    if loso:
        print(f"leave-one-source-out mean: {loso['mean']}")
        for source, figures in loso["per_source"].items():
            print(f"  without {source} ({figures['rows']} rows): model {figures['model']}, length {figures['length']}")
    else:
        print("leave-one-source-out: not recorded (router train --loso)")
    for name, entry in report.get("curves", {}).items():
        print(f"curve {name} (weak {entry['weak_model']}, strong {entry['strong_model']}):")
        for who, figures in entry["models"].items():
            print(f"  {who}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
        for who, margin in entry["margins"].items():
            m = margin["apgr"]
            print(f"  APGR margin of new over {who}: {m['margin']} (95% CI {m['ci95']})")
    for path, figures in report.get("haiku_agreement", {}).items():
        print(f"agreement with Haiku labels in {path}: {figures}")


def read_bodies(stream: TextIO) -> list[dict[str, Any]]:
    from router.classify.features import prompt_body

    bodies = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"line {number}: not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise SystemExit(f"line {number}: expected a JSON object")
        bodies.append(prompt_body(str(raw["prompt"])) if "prompt" in raw and "messages" not in raw else raw)
    return bodies


def _classify(args: argparse.Namespace) -> int:
    import asyncio

    from router.classify.service import build_triage
    from router.policy.loader import load_policy
    from router.settings import Settings

    settings = Settings.from_env(policies_dir=args.policies)
    bodies = read_bodies(sys.stdin)
    local_only = args.local_only or settings.embedded_sim
    if local_only and not args.local_only:
        _log("no ANTHROPIC_API_KEY or ROUTER_UPSTREAM_URL: classifying with the local model only")

    async def main() -> None:
        async with build_triage(settings, load_policy(settings.policies_dir).classifier, args.models) as triage:
            for body in bodies:
                result = await triage.cascade.classify(body, local_only=local_only)
                sys.stdout.write(msgspec.json.encode(result.classification).decode() + "\n")

    asyncio.run(main())
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from router.classify.local import load

    model = load(args.models, args.name)
    if args.target_share is None:
        print(json.dumps(_operating_point(args, model), indent=2))
        return 0
    if not 0.0 <= args.target_share <= 1.0:
        raise SystemExit("--target-share must be within [0, 1]")
    confidences = np.array([model.classify(body).confidence for body in read_bodies(sys.stdin)])
    if confidences.size == 0:
        raise SystemExit("no requests on stdin")
    # Requests below the threshold go to Haiku: the threshold is the target-share quantile of confidence.
    threshold = float(np.quantile(confidences, args.target_share))
    share = float((confidences < threshold).mean())
    print(json.dumps({"confidence_threshold": round(threshold, 4), "haiku_share": round(share, 4), "requests": int(confidences.size)}))
    return 0


def _operating_point(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """Tier shares the model's cut-offs give on natural prompts, and what that costs against sending
    everything to Opus (same tokens per request on every tier, prices from tiers.yaml)."""
    from router.classify import natural, quality
    from router.classify.curves import tier_prices
    from router.classify.fit import progress

    prices = tier_prices(args.policies / "tiers.yaml")
    rows = natural.load_natural(args.data)
    train_rows, held = natural.split(rows)
    tiers = {"low": "haiku", "medium": "sonnet", "high": "opus"}
    out: dict[str, Any] = {
        "model": args.name,
        "thresholds": model.metadata["thresholds"],
        "thresholds_on_1_10_scale": {k: round(1 + 9 * v, 3) for k, v in model.metadata["thresholds"].items()},
        "target_mix": model.metadata.get("train_config", {}).get("traffic_mix"),
        "prices_per_mtok_in_plus_out": prices,
    }
    for name, subset in (("natural_training_rows", train_rows), ("natural_held_out_rows", held)):
        units = np.array([model.classify(r.body).difficulty for r in progress(subset, name)])
        shares = quality.tier_shares(units, model.medium_at, model.high_at)
        cost = sum(shares[c] * prices[t] for c, t in tiers.items())
        out[name] = {
            "rows": len(subset),
            "tier_shares": shares,
            "cost_vs_always_opus": round(cost / prices["opus"], 4),
            "cost_cut_vs_always_opus": round(1 - cost / prices["opus"], 4),
        }
    return out


def _log(message: str) -> None:
    print(message, file=sys.stderr)
