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

DEFAULT_DATA = Path(os.environ.get("ROUTER_DATA_DIR", "../shared/data"))
DEFAULT_MODELS = Path("models")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="train the local classifier from the shared data")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled data (default ../shared/data)")
    p.add_argument("--out", type=Path, default=DEFAULT_MODELS, help="model directory (default models/)")
    p.add_argument("--name", default="triage-local-v1")
    p.add_argument("--extra", type=Path, action="append", default=[], help="Haiku-labelled JSONL to fold in")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loso", action="store_true", help="also run leave-one-source-out (slow: one fit per source)")

    p = sub.add_parser("eval", help="print the classifier's quality report")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--name", default="triage-local-v1")
    p.add_argument("--extra", type=Path, action="append", default=[], help="Haiku-labelled JSONL: report agreement")

    p = sub.add_parser("classify", help="classify JSON lines from stdin (request bodies or {\"prompt\": ...})")
    p.add_argument("--local-only", action="store_true", help="never call Haiku")
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--policies", type=Path, default=Path("policies"))

    p = sub.add_parser("calibrate", help="pick the confidence threshold for a target share of Haiku calls")
    p.add_argument("--target-share", type=float, required=True, help="share of requests to send to Haiku, 0..1")
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--name", default="triage-local-v1")


def run(args: argparse.Namespace) -> int:
    handler = {"train": _train, "eval": _eval, "classify": _classify, "calibrate": _calibrate}[args.command]
    return handler(args)


def _train(args: argparse.Namespace) -> int:
    from router.classify import evaluate
    from router.classify.dataset import data_hash, load_extra, load_rows
    from router.classify.local import load, save
    from router.classify.train import TrainConfig, build_model
    from router.errors import ConfigError

    started = time.monotonic()
    config = TrainConfig(seed=args.seed)
    rows = load_rows(args.data)
    train_rows = [r for r in rows if r.trainable]
    extra_rows = [row for path in args.extra for row in load_extra(path)]
    # Every fifth Haiku-labelled row is held out to measure how agreement with Haiku moves.
    extra_held = extra_rows[4::5]
    train_rows.extend(row for i, row in enumerate(extra_rows) if i % 5 != 4)
    calibration = [r for r in train_rows if r.natural]
    sources: dict[str, int] = {}
    for row in train_rows:
        sources[row.source] = sources.get(row.source, 0) + 1
    meta = {
        "training_data": {
            "combined_sha256": data_hash(args.data),
            "rows": len(train_rows),
            "rows_by_source": dict(sorted(sources.items())),
            "excluded": "alpaca_eval (CC BY-NC 4.0: evaluation only), every eval_only and test row",
            "extra_files": [str(p) for p in args.extra],
        },
        "attribution": "PromptTensor PromptBank prompts, CC BY 4.0; see ../shared/data/*/SOURCE.txt",
    }
    model, arrays, metadata = build_model(train_rows, config, calibration, meta)
    _log(f"trained on {len(train_rows)} rows in {time.monotonic() - started:.0f}s")
    report: dict[str, Any] = {
        "natural_holdout": evaluate.metrics(evaluate.natural_holdout(rows), evaluate.predict(model, evaluate.natural_holdout(rows))),
        "benchmark_holdout": evaluate.metrics(
            evaluate.benchmark_holdout(rows), evaluate.predict(model, evaluate.benchmark_holdout(rows))
        ),
    }
    if extra_rows:
        report["haiku_agreement_after"] = evaluate.agreement(model, extra_held)
        try:
            previous = load(args.out, args.name)
        except ConfigError:
            previous = None
        if previous is not None:
            report["haiku_agreement_before"] = evaluate.agreement(previous, extra_held)
    if args.loso:

        def fit_without(subset: Any) -> Any:
            return build_model(subset, config, [r for r in subset if r.natural], meta)[0]

        report["leave_one_source_out"] = evaluate.leave_one_source_out(rows, fit_without, evaluate.loso_sources(rows))
    metadata["evaluation"] = report
    path = save(args.out, args.name, arrays, metadata)
    _log(f"wrote {path} and its .json sidecar")
    print(json.dumps(report, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from router.classify import evaluate
    from router.classify.dataset import load_rows
    from router.classify.local import load

    model = load(args.models, args.name)
    rows = load_rows(args.data)
    live = {
        "natural_holdout": evaluate.metrics(evaluate.natural_holdout(rows), evaluate.predict(model, evaluate.natural_holdout(rows))),
        "benchmark_holdout": evaluate.metrics(
            evaluate.benchmark_holdout(rows), evaluate.predict(model, evaluate.benchmark_holdout(rows))
        ),
    }
    recorded = model.metadata.get("evaluation", {})
    print(f"model {args.name}: thresholds {model.metadata['thresholds']}")
    for name, result in live.items():
        _print_metrics(name, result)
    for path in args.extra:
        from router.classify.dataset import load_extra

        _print_metrics(f"agreement with Haiku labels in {path}", evaluate.agreement(model, load_extra(path)))
    loso = recorded.get("leave_one_source_out")
    if loso:
        _print_metrics("leave_one_source_out (mean, recorded at training)", loso["mean"])
        for source, result in loso["per_source"].items():
            _print_metrics(f"  without {source}", result)
    else:
        print("leave_one_source_out: not recorded (router train --loso)")
    return 0


def _print_metrics(name: str, result: dict[str, Any]) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in result.items())
    print(f"{name}: {shown}")


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

    if not 0.0 <= args.target_share <= 1.0:
        raise SystemExit("--target-share must be within [0, 1]")
    model = load(args.models, args.name)
    confidences = np.array([model.classify(body).confidence for body in read_bodies(sys.stdin)])
    if confidences.size == 0:
        raise SystemExit("no requests on stdin")
    # Requests below the threshold go to Haiku: the threshold is the target-share quantile of confidence.
    threshold = float(np.quantile(confidences, args.target_share))
    share = float((confidences < threshold).mean())
    print(json.dumps({"confidence_threshold": round(threshold, 4), "haiku_share": round(share, 4), "requests": int(confidences.size)}))
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr)
