"""How the router's added latency at c=1 depends on how long it sat idle waiting for the upstream.

    python -m bench.idle [--rounds 2] [--cores split] [--quick]

Runs the harness's three processes and, at concurrency 1, the direct / router / router-``auto`` arms
against a JSON upstream answering after 0 ms and after 3 ms, and a stream whose first token comes after
20 ms. The router does the same work in every case; only the wait differs. Prints the added p50 (router
minus direct) per case as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import HEADERS, Stack, arm_target, body, order, pct

CASES: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("json_0ms", {"*": {"ttft_ms": 0, "tokens_per_s": 0, "output_tokens": 24}}, False),
    ("json_3ms", {"*": {"ttft_ms": 3, "tokens_per_s": 0, "output_tokens": 24}}, False),
    ("stream_20ms_first_token", {"*": {"ttft_ms": 20, "tokens_per_s": 2000, "output_tokens": 48}}, True),
)
ARMS = ("direct", "router", "router_auto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cores", choices=("shared", "split"), default="shared")
    parser.add_argument("--quick", action="store_true", help="tiny samples: checks that it runs")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"cores": args.cores, "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        stack = Stack(Path(tmp))
        try:
            if args.cores == "split":
                stack.split_cores()
            for label, profile, stream in CASES:
                stack.profiles(profile)
                n = 10 if args.quick else (200 if stream else 600)
                pooled: dict[str, list[float]] = defaultdict(list)
                for rnd in range(args.rounds):
                    for arm in order(ARMS, rnd):
                        url, model = arm_target(stack, arm)
                        r = stack.drive({"url": url, "headers": HEADERS, "stream": stream, "concurrency": 1,
                                         "requests": n, "warmup": 20,
                                         "bodies": [body(model, stream=stream, max_tokens=64 if stream else 16)]})
                        pooled[arm] += r["ttft_ms"] if stream else r["lat_ms"]
                direct = pct(pooled["direct"], 0.5)
                report[label] = {
                    "direct_p50_ms": round(direct, 3),
                    "added_p50_concrete_ms": round(pct(pooled["router"], 0.5) - direct, 3),
                    "added_p50_auto_ms": round(pct(pooled["router_auto"], 0.5) - direct, 3),
                }
        finally:
            stack.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
