"""Paired comparison of two router builds: this working tree against a git ref, in the same run.

    python -m bench.compare REF [--rounds 6]     # e.g. python -m bench.compare HEAD~3
    python -m bench.compare HEAD --new-args "--state-url redis://127.0.0.1:6411/0"   # memory vs Redis, same code

A change's effect on this shared machine is smaller than the drift between two harness runs, so it is
measured here side by side: one simulated upstream, one load generator, and two routers -- this tree
(``new``) and ``REF`` unpacked with ``git archive`` (``old``), both run with the project's Python and the
harness's policies. Every round runs each arm (direct, old, new; concrete id and ``auto``) back to back,
in an order that alternates between rounds, so drift falls on both builds alike. Reported per phase: the
new build minus the old at the same percentile (negative = the change made the router faster), with each
build's own delta against direct for context, and router CPU per request at c=64. ``--old-args`` and
``--new-args`` add ``router serve`` flags to one arm (a state backend, ``--workers``), so two settings of the
same code are paired the same way. With ``--workers`` the CPU figure is the parent process's only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import (
    CONCRETE, HEADERS, PROFILE_0MS, PROFILE_20MS, PROFILE_STREAM, ROOT, Stack, body, bench_policies, cpu_seconds,
    free_port, order, pct, wait_ready, with_files,
)
from router.policy.keys import hash_key

TENANT_KEY = "sk-bench-tenant-0123456789abcdef"
LIMITED = f"""tenants:
  bench:
    keys: ["{hash_key(TENANT_KEY)}"]
    rate_limit: {{requests_per_minute: 10000000, tokens_per_minute: 1000000000}}
    budget: {{monthly_usd: 1000000}}
"""
"""``--tenant limited``: a tenant with a rate limit and a budget none of the load reaches, so every request
is admitted (both buckets and a budget reservation) and settled, as a paying tenant's would be."""

ARMS = ("direct", "old", "new", "old_auto", "new_auto")


def unpack(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (router/, models/, policies/ ...) as plain files under ``into``."""
    archive = into / "old.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), ref], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "old", filter="data")
    return into / "old"


class Pair:
    def __init__(
        self, stack: Stack, old_root: Path, tmp: Path, old_args: tuple[str, ...] = (),
        files: dict[str, str] | None = None, headers: dict[str, str] = HEADERS,
    ) -> None:
        self.stack = stack
        self.headers = headers
        port = free_port()
        self.old_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ANTHROPIC_API_KEY": "x", "ROUTER_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        # cwd first on sys.path: ``-m router`` imports the old tree's package, not this one.
        self.old = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--port", str(port), "--upstream-url", stack.sim_url,
             "--policies", str(with_files(bench_policies(tmp / "old-policies", old_root / "policies"), files)),
             "--models", str(old_root / "models"), "--log-level", "WARNING", "--admin-port", "0", *old_args],
            cwd=old_root, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "old-router.log", "wb"),
        )
        stack.procs.append(self.old)
        wait_ready(self.old_url + "/livez", self.old, "old router")

    def target(self, arm: str) -> tuple[str, str]:
        model = "auto" if arm.endswith("_auto") else CONCRETE
        if arm == "direct":
            return self.stack.sim_url + "/v1/messages", CONCRETE
        base = self.old_url if arm.startswith("old") else self.stack.router_url
        return base + "/v1/messages", model

    def run(self, arm: str, stream: bool = False, **cmd: Any) -> dict[str, Any]:
        url, model = self.target(arm)
        payload = [body(model, stream=stream, max_tokens=64 if stream else 16)]
        headers = HEADERS if arm == "direct" else self.headers
        return self.stack.drive({"url": url, "headers": headers, "bodies": payload, "stream": stream, **cmd})


def compare(pooled: dict[str, list[float]], quantiles: tuple[float, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for suffix in ("", "_auto"):
        for q in quantiles:
            old, new, direct = (pct(pooled[arm], q) for arm in ("old" + suffix, "new" + suffix, "direct"))
            name = f"p{int(q * 100)}{suffix or '_concrete'}"
            out[name] = {"new_minus_old": round(new - old, 3), "old_vs_direct": round(old - direct, 3),
                         "new_vs_direct": round(new - direct, 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the git ref to compare this working tree against")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="tiny samples: checks the comparison runs")
    parser.add_argument("--old-args", default="", help="extra `router serve` flags for the REF router")
    parser.add_argument("--new-args", default="", help="extra `router serve` flags for this tree's router")
    parser.add_argument("--tenant", choices=("anonymous", "limited"), default="anonymous",
                        help="limited: the load is a tenant with a rate limit and a budget (admitted and settled)")
    args = parser.parse_args(argv)
    files = {"tenants.yaml": LIMITED} if args.tenant == "limited" else None
    headers = {**HEADERS, "x-api-key": TENANT_KEY} if args.tenant == "limited" else HEADERS
    n0, n20, nstream, seconds = (30, 10, 10, 0.5) if args.quick else (600, 100, 60, 3.0)
    report: dict[str, Any] = {"ref": args.ref, "rounds": args.rounds, "old_args": args.old_args,
                              "new_args": args.new_args, "tenant": args.tenant}
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp_name:
        tmp = Path(tmp_name)
        old_root = unpack(args.ref, tmp)
        (tmp / "stack").mkdir()
        stack = Stack(tmp / "stack", router_args=tuple(shlex.split(args.new_args)), policy_files=files)
        try:
            pair = Pair(stack, old_root, tmp, tuple(shlex.split(args.old_args)), files, headers)
            for label, profile, n, stream in (("latency_0ms", PROFILE_0MS, n0, False), ("latency_20ms", PROFILE_20MS, n20, False),
                                              ("ttft_1_stream", PROFILE_STREAM, nstream, True)):
                stack.profiles(profile)
                pooled: dict[str, list[float]] = defaultdict(list)
                for rnd in range(args.rounds):
                    for arm in order(ARMS, rnd):
                        r = pair.run(arm, stream=stream, concurrency=1, requests=n, warmup=20)
                        pooled[arm] += r["ttft_ms"] if stream else r["lat_ms"]
                report[label] = compare(pooled, (0.5, 0.99))
                print(label, json.dumps(report[label]), file=sys.stderr, flush=True)
            stack.profiles(PROFILE_20MS)
            pids = {"old": pair.old.pid, "new": stack.router.pid}
            cpu: dict[str, list[float]] = defaultdict(list)
            rate: dict[str, list[float]] = defaultdict(list)
            for rnd in range(max(args.rounds // 2, 1)):
                for arm in order(ARMS, rnd):
                    pid = pids.get(arm.split("_")[0])
                    before = cpu_seconds(pid) if pid else 0.0
                    r = pair.run(arm, concurrency=64, duration=seconds, warmup=128)
                    served = sum(r["status"].values()) + 128
                    if pid:
                        cpu[arm].append((cpu_seconds(pid) - before) * 1000 / served)
                    rate[arm].append(r["count"] / r["elapsed_s"])
            report["c64"] = {
                arm: {"router_cpu_ms_per_req": round(statistics.median(cpu[arm]), 3) if cpu[arm] else None,
                      "req_per_s": round(statistics.median(rate[arm]))}
                for arm in ARMS
            }
            print("c64", json.dumps(report["c64"]), file=sys.stderr, flush=True)
        finally:
            stack.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
