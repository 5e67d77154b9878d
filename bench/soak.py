"""Soak: N minutes of mixed load against the router in front of the simulator with faults, reporting the
router process's RSS, open file descriptors and the client-visible errors every interval.

    python -m bench.soak --minutes 10          # make soak MINUTES=10
    python -m bench.soak --seconds 8 --interval 2   # the smoke test's size

The simulator and the router run as their own processes (``router sim``, ``router serve``), so the RSS and
descriptor counts are the router's alone (read from /proc). The load is the real anthropic SDK
(``max_retries=0``, so nothing is hidden by client retries): JSON answers, streams and ``count_tokens``
across the tiers, plus deliberate bad requests that must get their exact 4xx envelope. The simulator
injects faults the router must absorb by falling back (5xx on Opus, also on count_tokens, Haiku errors before
content and 429s with a short retry-after): any exception, or a bad request answered with anything but its 400, is an error.

Exit status: 0 when there were no errors, RSS stayed within ``--rss-growth`` (10 %) of the first sample
after warm-up and the descriptor count within ``--fd-slack`` of it; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic

ROOT = Path(__file__).resolve().parent.parent

# Faults a correct router absorbs by falling back before the commit point, chosen so every fallback chain
# keeps a target that answers: Sonnet (every tier's chain and every rule's floor reach it) gets none.
# Capacity faults (429/529) cool a model; with every tier of a chain cooling at once the router rightly
# answers 429, and that would be the fault mix's doing, not the router's.
FAULTS = [
    {"kind": "server_error", "model": "claude-opus-4-8", "status": 503, "probability": 0.08},
    {"kind": "error_before_content", "model": "claude-haiku-4-5", "probability": 0.03},
    {"kind": "rate_limit", "model": "claude-haiku-4-5", "probability": 0.02, "retry_after": 1},
    {"kind": "server_error", "model": "claude-opus-4-8", "endpoint": "count_tokens", "status": 502, "probability": 0.1},
]
MODELS = ("auto", "haiku", "sonnet", "opus", "claude-opus-4-8")
PROMPTS = ("Say hello.", "Prove that the square root of 2 is irrational.", "Write a haiku about rivers.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


def rss_and_fds(pid: int) -> tuple[float, int]:
    """The process's resident set (MiB) and open descriptors, from /proc."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return rss_kib / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def scrape_total(url: str, name: str) -> float:
    """The sum of every series of one metric on the router's admin listener."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


class Load:
    """Worker threads sending the mix; counts requests by kind and keeps the first few error texts."""

    def __init__(self, url: str, workers: int) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(workers)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _count(self, kind: str, error: str | None = None) -> None:
        with self.lock:
            self.counts[kind] += 1
            if error is not None:
                self.counts["errors"] += 1
                if len(self.errors) < 20:
                    self.errors.append(f"{kind}: {error}"[:300])

    def _run(self, worker: int) -> None:
        client = anthropic.Anthropic(base_url=self.url, api_key="sk-soak", max_retries=0, timeout=30)
        n = worker
        while not self.stop.is_set():
            n += 1
            kind = ("json", "stream", "json", "count_tokens", "stream", "bad_request")[n % 6]
            model = MODELS[n % len(MODELS)]
            messages = [{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}]
            try:
                if kind == "json":
                    message = client.messages.create(model=model, max_tokens=32, messages=messages)  # type: ignore[arg-type]
                    error = None if message.content else "empty answer"
                elif kind == "stream":
                    with client.messages.stream(model=model, max_tokens=32, messages=messages) as stream:  # type: ignore[arg-type]
                        final = stream.get_final_message()
                    error = None if final.stop_reason else "stream without a stop reason"
                elif kind == "count_tokens":
                    counted = client.messages.count_tokens(model=model, messages=messages)  # type: ignore[arg-type]
                    error = None if counted.input_tokens > 0 else "no input tokens"
                else:
                    error = self._bad_request()
            except Exception as exc:  # noqa: BLE001 -- every failure is what the soak counts
                error = f"{type(exc).__name__}: {exc}"
            self._count(kind, error)

    def _bad_request(self) -> str | None:
        request = urllib.request.Request(
            self.url + "/v1/messages", data=b'{"model": "auto", "messages": [', method="POST",
            headers={"content-type": "application/json", "x-api-key": "sk-soak"},
        )
        try:
            urllib.request.urlopen(request, timeout=30).read()
        except urllib.error.HTTPError as err:
            body = json.loads(err.read())
            if err.code == 400 and body["error"]["type"] == "invalid_request_error":
                return None
            return f"status {err.code}: {body}"
        return "a malformed body was answered 200"


def start_stack(
    env: dict[str, str], logs: Path, sim_args: tuple[str, ...], router_args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, subprocess.Popen, int, int, int]:  # type: ignore[type-arg]
    """A simulator and a router in front of it, each a process on free loopback ports, logging into
    ``logs``: (sim, router, sim port, client port, admin port). Shared by ``bench.soak`` and ``bench.fuzz_api``."""
    sim_port, port, admin_port = free_port(), free_port(), free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "router", "sim", "--port", str(sim_port), *sim_args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(logs / "sim.log", "wb"),
    )
    router = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--port", str(port), "--admin-port", str(admin_port),
         "--upstream-url", f"http://127.0.0.1:{sim_port}", *router_args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(logs / "router.log", "wb"),
    )
    return sim, router, sim_port, port, admin_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--seconds", type=float, default=None, help="how long to run, in seconds (overrides --minutes)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between reports (default 30)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent client threads (default 4)")
    parser.add_argument("--rss-growth", type=float, default=0.10, help="allowed RSS growth after warm-up (0.10)")
    parser.add_argument("--fd-slack", type=int, default=16, help="allowed growth in open descriptors (16)")
    args = parser.parse_args(argv)
    duration = args.seconds if args.seconds is not None else args.minutes * 60

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ROUTER_"))}
    env.update({"ANTHROPIC_API_KEY": "sk-soak-upstream", "ROUTER_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
    logs = Path(tempfile.mkdtemp(prefix="router-soak-"))
    sim, router, sim_port, port, admin_port = start_stack(
        env, logs, ("--latency-ms", "5", "--tokens-per-s", "2000"), ("--log-level", "WARNING")
    )
    load: Load | None = None
    try:
        wait_ready(f"http://127.0.0.1:{sim_port}/_sim/requests", sim)
        wait_ready(f"http://127.0.0.1:{admin_port}/readyz", router)
        faults = urllib.request.Request(
            f"http://127.0.0.1:{sim_port}/_sim/faults", data=json.dumps({"faults": FAULTS}).encode(), method="PUT",
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(faults, timeout=10).read()
        load = Load(f"http://127.0.0.1:{port}", args.workers)
        load.start()
        started = time.monotonic()
        samples: list[tuple[float, int]] = []
        print(f"soak: {duration:.0f} s, {args.workers} workers, faults {len(FAULTS)} rules; logs in {logs}", flush=True)
        print("| elapsed s | requests | errors | router RSS MiB | open fds |", flush=True)
        print("| --- | --- | --- | --- | --- |", flush=True)
        while True:
            remaining = duration - (time.monotonic() - started)
            if remaining <= 0:
                break
            time.sleep(min(args.interval, remaining))
            if router.poll() is not None:
                raise RuntimeError(f"the router exited with {router.returncode}")
            rss, fds = rss_and_fds(router.pid)
            samples.append((rss, fds))
            with load.lock:
                total = sum(v for k, v in load.counts.items() if k != "errors")
                errors = load.counts["errors"]
            print(f"| {time.monotonic() - started:.0f} | {total} | {errors} | {rss:.1f} | {fds} |", flush=True)
        load.join()
        fallbacks = scrape_total(f"http://127.0.0.1:{admin_port}/metrics", "router_fallbacks_total")
        print(f"fallbacks the clients never saw: {fallbacks:.0f} (router_fallbacks_total)", flush=True)
        with load.lock:
            counts = dict(load.counts)
            errors_seen = list(load.errors)
    finally:
        if load is not None:
            load.stop.set()
        for proc in (router, sim):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (router, sim):
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
    return verdict(counts, errors_seen, samples, args.rss_growth, args.fd_slack)


def verdict(
    counts: dict[str, int], errors: list[str], samples: list[tuple[float, int]], rss_growth: float, fd_slack: int
) -> int:
    print("requests by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "errors"))
    problems: list[str] = []
    if counts.get("errors", 0):
        problems.append(f"{counts['errors']} errors, first: " + " | ".join(errors[:5]))
    if not samples:
        problems.append("no samples taken (duration shorter than one interval?)")
    else:
        # The first sample is after one interval of load: the warmed-up baseline.
        (rss0, fds0), (rss1, fds1) = samples[0], samples[-1]
        peak_rss, peak_fds = max(s[0] for s in samples), max(s[1] for s in samples)
        print(f"RSS {rss0:.1f} -> {rss1:.1f} MiB (peak {peak_rss:.1f}); fds {fds0} -> {fds1} (peak {peak_fds})")
        if rss1 > rss0 * (1 + rss_growth):
            problems.append(f"RSS grew {100 * (rss1 / rss0 - 1):.1f} % (> {100 * rss_growth:.0f} %)")
        if fds1 > fds0 + fd_slack:
            problems.append(f"open descriptors grew by {fds1 - fds0} (> {fd_slack})")
    for problem in problems:
        print("FAIL: " + problem)
    if not problems:
        print("OK: zero errors, RSS and descriptors flat")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
