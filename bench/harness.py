"""End-to-end benchmark: the router against the simulated upstream, compared with the upstream directly.

    python -m bench.harness                 # full run (default 3 rounds, a few minutes on 2 cores)
    python -m bench.harness --quick         # smoke run: every row, tiny sample sizes (~30 s)
    python -m bench.harness --rounds 5 --json results.json --profile router.raw
    python -m bench.harness --cores split   # the router alone on CPU 0, simulator and load generator on CPU 1

Starts three separate processes -- the simulated upstream (``python -m router sim``), the router
(``python -m router serve`` with a temporary copy of ``policies/`` whose classifier never calls Haiku) and
a load generator (``python -m bench.load``, driven over a pipe) -- then runs every phase in rounds. Within a
round each arm (direct to the sim, through the router with a concrete model id, through the router with
``model: "auto"``) runs the same load back to back, alternating the order between rounds, so machine drift
affects both sides alike. Samples are pooled over rounds per arm; figures are deltas and ratios of the
router arm against the direct arm, never bare absolute numbers alone. See BENCHMARKS.md for what each
figure means and the results on the reference machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONCRETE = "claude-sonnet-4-6"
PROMPT = (
    "Our team is planning a migration of a small internal service from a single virtual machine to a "
    "managed container platform. Please list the main risks we should consider, how to test the new "
    "deployment before switching traffic, and what a rollback plan should include if the cutover fails."
)  # 49 words
HEADERS = {"x-api-key": "bench", "content-type": "application/json", "anthropic-version": "2023-06-01"}
PROFILE_0MS = {"*": {"ttft_ms": 0, "tokens_per_s": 0, "output_tokens": 24}}
PROFILE_20MS = {"*": {"ttft_ms": 20, "tokens_per_s": 0, "output_tokens": 24}}
PROFILE_STREAM = {"*": {"ttft_ms": 20, "tokens_per_s": 2000, "output_tokens": 48}}
ARMS = ("direct", "router", "router_auto")

# Every row the table prints, in order: (key, label, target text, comparison, threshold).
ROWS: list[tuple[str, str, str, str | None, float | None]] = [
    ("added_p50_0ms_auto", "added latency c=1 p50, 0 ms upstream, auto (ms)", "<= 0.6", "le", 0.6),
    ("added_p90_0ms_auto", "added latency c=1 p90, 0 ms upstream, auto (ms)", "-", None, None),
    ("added_p99_0ms_auto", "added latency c=1 p99, 0 ms upstream, auto (ms)", "<= 2", "le", 2.0),
    ("added_p50_0ms", "added latency c=1 p50, 0 ms upstream, concrete id (ms)", "-", None, None),
    ("added_p90_0ms", "added latency c=1 p90, 0 ms upstream, concrete id (ms)", "-", None, None),
    ("added_p99_0ms", "added latency c=1 p99, 0 ms upstream, concrete id (ms)", "-", None, None),
    ("added_p50_20ms_auto", "added latency c=1 p50, 20 ms upstream, auto (ms)", "-", None, None),
    ("added_p90_20ms_auto", "added latency c=1 p90, 20 ms upstream, auto (ms)", "-", None, None),
    ("added_p99_20ms_auto", "added latency c=1 p99, 20 ms upstream, auto (ms)", "-", None, None),
    ("added_p50_20ms", "added latency c=1 p50, 20 ms upstream, concrete id (ms)", "-", None, None),
    ("added_p99_20ms", "added latency c=1 p99, 20 ms upstream, concrete id (ms)", "-", None, None),
    ("tput_16_auto", "throughput router/direct c=16, 20 ms, auto (x)", "-", None, None),
    ("tput_64_auto", "throughput router/direct c=64, 20 ms, auto (x)", ">= 0.85", "ge", 0.85),
    ("tput_256_auto", "throughput router/direct c=256, 20 ms, auto (x)", "-", None, None),
    ("tput_16", "throughput router/direct c=16, 20 ms, concrete id (x)", "-", None, None),
    ("tput_64", "throughput router/direct c=64, 20 ms, concrete id (x)", "-", None, None),
    ("tput_256", "throughput router/direct c=256, 20 ms, concrete id (x)", "-", None, None),
    ("ttft_p50_1_auto", "stream added TTFT p50, 1 stream, auto (ms)", "<= 2", "le", 2.0),
    ("ttft_p99_1_auto", "stream added TTFT p99, 1 stream, auto (ms)", "-", None, None),
    ("ttft_p50_1", "stream added TTFT p50, 1 stream, concrete id (ms)", "-", None, None),
    ("ttft_p99_1", "stream added TTFT p99, 1 stream, concrete id (ms)", "-", None, None),
    ("ttft_p50_100_auto", "stream added TTFT p50, 100 streams, auto (ms)", "-", None, None),
    ("ttft_p99_100_auto", "stream added TTFT p99, 100 streams, auto (ms)", "-", None, None),
    ("ttft_p50_100", "stream added TTFT p50, 100 streams, concrete id (ms)", "-", None, None),
    ("ttft_p99_100", "stream added TTFT p99, 100 streams, concrete id (ms)", "-", None, None),
    ("streams_400_lost", "400 concurrent streams: frames lost / out of order", "0", "le", 0.0),
    ("fallback_p50", "fallback after 429 added p50 (ms)", "<= 5", "le", 5.0),
    ("fallback_p99", "fallback after 429 added p99 (ms)", "-", None, None),
    ("cpu_ms_per_req_256", "router CPU per request, c=256 auto (ms)", "-", None, None),
    ("rss_mb_256", "router peak RSS (VmHWM) after c=256 (MB)", "<= 250", "le", 250.0),
    ("clf_50_p50", "classifier local p50, ~50-word prompt, distinct words (ms)", "-", None, None),
    ("clf_short_p50", "classifier local p50, ~200-word prompt (ms)", "<= 0.3", "le", 0.3),
    ("clf_long_p50", "classifier local p50, ~20k-token request (ms)", "<= 2", "le", 2.0),
]


# --------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, payload: Any | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        try:
            status, _ = http("GET", url, timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def bench_policies(tmp: Path, source: Path = ROOT / "policies") -> Path:
    """A copy of ``source`` (policies/) whose classifier never asks Haiku (local classification only)."""
    target = tmp / "policies"
    shutil.copytree(source, target)
    path = target / "classifier.yaml"
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("confidence_threshold:"):
            line = "confidence_threshold: 0.0   # bench: never ask Haiku"
        elif line.strip().startswith("enabled:"):
            line = line.split("enabled:")[0] + "enabled: false"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return target


def with_files(policies: Path, files: dict[str, str] | None) -> Path:
    """``policies`` with these files (name -> text) written into it."""
    for name, text in (files or {}).items():
        (policies / name).write_text(text)
    return policies


class Stack:
    """The three processes: sim, router, load generator."""

    def __init__(
        self, tmp: Path, transport: str | None = None, router_args: tuple[str, ...] = (),
        policy_files: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        # ``router serve``, or (``--transport``) the same command with another upstream transport injected.
        serve = ["-m", "router", "serve"] if transport is None else ["-m", "bench.serve_with", transport, "serve"]
        env = {**os.environ, "ANTHROPIC_API_KEY": "x", "ROUTER_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        self.sim_port, self.router_port = free_port(), free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.router_url = f"http://127.0.0.1:{self.router_port}"
        self.sim = self._spawn(
            [sys.executable, "-m", "router", "sim", "--port", str(self.sim_port), "--latency-ms", "0", "--tokens-per-s", "0"],
            env, "sim.log",
        )
        self.router = self._spawn(
            [sys.executable, *serve, "--port", str(self.router_port), "--admin-port", "0",
             "--upstream-url", self.sim_url,
             "--policies", str(with_files(bench_policies(tmp), policy_files)), "--log-level", "WARNING", *router_args],
            env, "router.log",
        )
        self.load = subprocess.Popen(
            [sys.executable, "-m", "bench.load"], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(tmp / "load.log", "wb"), text=True,
        )
        self.procs.append(self.load)
        wait_ready(self.sim_url + "/v1/models", self.sim, "sim")
        wait_ready(self.router_url + "/livez", self.router, "router")

    def _spawn(self, argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(self.tmp / log, "wb"))
        self.procs.append(proc)
        return proc

    def drive(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.load.stdin and self.load.stdout
        self.load.stdin.write(json.dumps(cmd) + "\n")
        self.load.stdin.flush()
        line = self.load.stdout.readline()
        if not line:
            raise RuntimeError("load generator exited: " + (self.tmp / "load.log").read_text()[-2000:])
        result = json.loads(line)
        if "fatal" in result:
            raise RuntimeError("load generator failed: " + result["fatal"])
        return result

    def split_cores(self) -> None:
        """The router alone on the first CPU, the simulator and the load generator on the second (every
        thread of each process)."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise RuntimeError("--cores split needs two CPUs")
        router_cpu, other_cpu = {cpus[0]}, {cpus[1]}
        for proc, cpus_for in ((self.router, router_cpu), (self.sim, other_cpu), (self.load, other_cpu)):
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                os.sched_setaffinity(int(task.name), cpus_for)

    def profiles(self, profiles: dict[str, Any]) -> None:
        status, body = http("PUT", self.sim_url + "/_sim/profiles", {"profiles": profiles})
        assert status == 200, body

    def faults(self, faults: list[dict[str, Any]]) -> None:
        status, body = http("PUT", self.sim_url + "/_sim/faults", {"faults": faults})
        assert status == 200, body

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.load.stdin
            self.load.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.load.stdin.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


# --------------------------------------------------------------------------------------------- /proc


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------------------------- phases


def body(model: str, *, stream: bool = False, max_tokens: int = 16, prompt: str = PROMPT) -> str:
    payload: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        payload["stream"] = True
    return json.dumps(payload)


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def arm_target(stack: Stack, arm: str) -> tuple[str, str]:
    """(url, model) for an arm."""
    if arm == "direct":
        return stack.sim_url + "/v1/messages", CONCRETE
    return stack.router_url + "/v1/messages", ("auto" if arm == "router_auto" else CONCRETE)


def order(arms: tuple[str, ...], rnd: int) -> tuple[str, ...]:
    return arms if rnd % 2 == 0 else tuple(reversed(arms))


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.quick = args.quick
        self.rounds = args.rounds
        self.results: dict[str, float] = {}
        self.detail: dict[str, Any] = {}

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def run_arm(self, arm: str, **cmd: Any) -> dict[str, Any]:
        url, model = arm_target(self.stack, arm)
        stream = cmd.pop("stream", False)
        bodies = cmd.pop("bodies", None) or [body(model, stream=stream, max_tokens=64 if stream else 16)]
        result = self.stack.drive({"url": url, "headers": HEADERS, "bodies": bodies, "stream": stream, **cmd})
        bad = {k: v for k, v in result["status"].items() if k != "200"}
        if bad or result["errors"]:
            self.log(f"  {arm}: non-200 {bad}, errors {result['errors']} {result['error_kinds']}")
        return result

    # -- added latency at c=1 -------------------------------------------------------------------------
    def latency(self, label: str, profile: dict[str, Any], requests: int) -> None:
        self.stack.profiles(profile)
        pooled: dict[str, list[float]] = defaultdict(list)
        for rnd in range(self.rounds):
            for arm in order(ARMS, rnd):
                r = self.run_arm(arm, concurrency=1, requests=requests, warmup=20)
                pooled[arm] += r["lat_ms"]
        d = pooled["direct"]
        for arm, suffix in (("router", ""), ("router_auto", "_auto")):
            for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
                self.results[f"added_{name}_{label}{suffix}"] = pct(pooled[arm], q) - pct(d, q)
        self.detail[f"latency_{label}"] = {
            arm: {"n": len(v), "p50_ms": pct(v, 0.5), "p90_ms": pct(v, 0.9), "p99_ms": pct(v, 0.99)}
            for arm, v in pooled.items()
        }
        self.log(f"latency {label}: " + json.dumps(self.detail[f"latency_{label}"]))

    # -- throughput ---------------------------------------------------------------------------------
    def throughput(self, duration: float) -> None:
        self.stack.profiles(PROFILE_20MS)
        pid = self.stack.router.pid
        for conc in (16, 64, 256):
            rates: dict[str, list[float]] = defaultdict(list)
            p50: dict[str, list[float]] = defaultdict(list)
            cpu: list[float] = []
            # CPU of every process per request (ms), to show where the 2 cores go in each arm.
            share: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
            pids = {"router": pid, "sim": self.stack.sim.pid, "load": self.stack.load.pid}
            for rnd in range(self.rounds):
                for arm in order(ARMS, rnd):
                    before = {k: cpu_seconds(p) for k, p in pids.items()}
                    r = self.run_arm(arm, concurrency=conc, duration=duration, warmup=conc * 2)
                    after = {k: cpu_seconds(p) for k, p in pids.items()}
                    spent = after["router"] - before["router"]
                    served_all = sum(r["status"].values()) + conc * 2
                    for k in pids:
                        share[arm][k].append((after[k] - before[k]) * 1000 / served_all)
                    rates[arm].append(r["count"] / r["elapsed_s"])
                    p50[arm].append(pct(r["lat_ms"], 0.5))
                    if conc == 256 and arm == "router_auto":
                        served = sum(r["status"].values()) + conc * 2  # measured + warm-up, all in the window
                        cpu.append(spent * 1000 / served)
            # Ratio per round (same drift on both sides), then the median over rounds.
            for arm, suffix in (("router", ""), ("router_auto", "_auto")):
                ratios = [a / b for a, b in zip(rates[arm], rates["direct"])]
                self.results[f"tput_{conc}{suffix}"] = statistics.median(ratios)
            self.detail[f"throughput_c{conc}"] = {
                arm: {
                    "req_per_s": [round(x) for x in rates[arm]], "p50_ms": [round(x, 2) for x in p50[arm]],
                    "cpu_ms_per_req": {k: round(statistics.median(v), 3) for k, v in share[arm].items()},
                }
                for arm in ARMS
            }
            self.log(f"throughput c={conc}: " + json.dumps(self.detail[f"throughput_c{conc}"]))
            if conc == 256:
                self.results["cpu_ms_per_req_256"] = statistics.median(cpu)
                self.results["rss_mb_256"] = status_kb(pid, "VmHWM") / 1024
                self.detail["router_rss"] = {
                    "VmHWM_kb": status_kb(pid, "VmHWM"), "VmRSS_kb": status_kb(pid, "VmRSS"),
                    "cpu_ms_per_req_rounds": [round(x, 3) for x in cpu],
                }

    # -- streaming ----------------------------------------------------------------------------------
    def streaming(self, n1: int, n100: int) -> None:
        self.stack.profiles(PROFILE_STREAM)
        for conc, n in ((1, n1), (100, n100)):
            pooled: dict[str, list[float]] = defaultdict(list)
            for rnd in range(self.rounds):
                for arm in order(ARMS, rnd):
                    r = self.run_arm(arm, stream=True, concurrency=conc, requests=n, warmup=min(conc, 20))
                    pooled[arm] += r["ttft_ms"]
            for arm, suffix in (("router", ""), ("router_auto", "_auto")):
                for q, name in ((0.5, "p50"), (0.99, "p99")):
                    self.results[f"ttft_{name}_{conc}{suffix}"] = pct(pooled[arm], q) - pct(pooled["direct"], q)
            self.detail[f"ttft_c{conc}"] = {
                arm: {"n": len(v), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99)} for arm, v in pooled.items()
            }
            self.log(f"ttft c={conc}: " + json.dumps(self.detail[f"ttft_c{conc}"]))
        # 400 concurrent streams, each a different prompt: every frame, in order, same as direct.
        arms = ("direct", "router")
        bodies = {
            arm: [body(arm_target(self.stack, arm)[1], stream=True, max_tokens=64, prompt=f"{PROMPT} (stream {i})")
                  for i in range(400)]
            for arm in arms
        }
        runs = {
            arm: self.run_arm(arm, stream=True, concurrency=400, requests=400, warmup=0, bodies=bodies[arm], signatures=True)
            for arm in arms
        }
        direct, routed = runs["direct"], runs["router"]
        lost = mismatched = incomplete = 0
        for i in range(400):
            key = str(i)
            want_frames, got_frames = direct["frames"].get(key), routed["frames"].get(key)
            if got_frames is None or want_frames is None or got_frames < want_frames:
                lost += (want_frames or 0) - (got_frames or 0) if got_frames is not None else (want_frames or 1)
            if direct["sigs"].get(key) != routed["sigs"].get(key):
                mismatched += 1
            if not routed["complete"].get(key):
                incomplete += 1
        self.results["streams_400_lost"] = float(lost + mismatched + incomplete)
        self.detail["streams_400"] = {
            "direct_streams_ok": sum(1 for v in direct["complete"].values() if v),
            "router_streams_ok": sum(1 for v in routed["complete"].values() if v),
            "frames_direct": sum(direct["frames"].values()), "frames_router": sum(routed["frames"].values()),
            "frames_lost": lost, "streams_with_different_sequence": mismatched, "streams_incomplete": incomplete,
            "router_status": routed["status"], "router_errors": routed["errors"],
        }
        self.log("streams 400: " + json.dumps(self.detail["streams_400"]))

    # -- fallback -----------------------------------------------------------------------------------
    def fallback(self, requests: int) -> None:
        # retry_after=0: the sim sends `retry-after: 0`, the dispatcher cools claude-opus-4-8 for 0 s
        # (Cooldowns.active drops entries whose `until <= now`), so every request meets the 429 afresh.
        # Every opus reply's x-router-attempts is checked to prove it.
        self.stack.profiles(PROFILE_0MS)
        self.stack.faults([{"kind": "rate_limit", "model": "claude-opus-4-8", "retry_after": 0}])
        url = self.stack.router_url + "/v1/messages"
        pooled: dict[str, list[float]] = defaultdict(list)
        attempts: Counter[str] = Counter()
        try:
            for rnd in range(self.rounds):
                for model in order(("opus", "sonnet"), rnd):
                    r = self.stack.drive({
                        "url": url, "headers": HEADERS, "bodies": [body(model)], "concurrency": 1,
                        "requests": requests, "warmup": 20, "collect_header": "x-router-attempts",
                    })
                    pooled[model] += r["lat_ms"]
                    if model == "opus":
                        attempts.update(r["collected"])
        finally:
            self.stack.faults([])
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            self.results[f"fallback_{name}"] = pct(pooled["opus"], q) - pct(pooled["sonnet"], q)
        self.detail["fallback"] = {
            "opus_attempts_seen": dict(attempts),
            **{m: {"n": len(v), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99)} for m, v in pooled.items()},
        }
        self.log("fallback: " + json.dumps(self.detail["fallback"]))

    # -- classifier ---------------------------------------------------------------------------------
    def classifier(self, runs: int) -> None:
        from bench.classifier_latency import inputs, summary, time_calls
        from router.classify.local import load

        model = load(ROOT / "models")
        found = {}
        for name, request in inputs().items():
            found[name] = summary(time_calls(model.classify, request, runs))
        self.results["clf_50_p50"] = found["prompt_50_words"]["median_ms"]
        self.results["clf_short_p50"] = found["prompt_200_words"]["median_ms"]
        self.results["clf_long_p50"] = found["request_20k_tokens"]["median_ms"]
        self.detail["classifier"] = found
        self.log("classifier: " + json.dumps(found))

    # -- profile ------------------------------------------------------------------------------------
    def profile(self, out: Path, seconds: float) -> None:
        """py-spy on the router while the load generator holds c=64 auto against a 20 ms upstream."""
        pyspy = shutil.which("py-spy")
        if not pyspy:
            self.log("py-spy not installed: no profile")
            return
        self.stack.profiles(PROFILE_20MS)
        spy = subprocess.Popen(
            [pyspy, "record", "-p", str(self.stack.router.pid), "-f", "raw", "-d", str(int(seconds)), "--nonblocking",
             "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(1.0)
        self.run_arm("router_auto", concurrency=64, duration=seconds + 1, warmup=0)
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0 or not out.exists():
            self.log(f"py-spy failed ({spy.returncode}): {err.strip()[-500:]}")
            return
        self.detail["profile"] = summarise_profile(out)
        self.log(f"profile written to {out}")


GROUPS = (  # leaf-frame file patterns -> where the CPU goes, first match wins
    ("router classifier (router/classify)", "router/classify/"),
    ("aiohttp client (upstream)", "aiohttp/"),
    ("litestar", "litestar/"),
    ("uvicorn + httptools", "uvicorn/"),
    ("prometheus_client", "prometheus_client/"),
    ("logging", "logging/"),
    ("asyncio", "asyncio/"),
    ("router (other own code)", "router/"),
)


def summarise_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """From py-spy's raw (collapsed) output: own (leaf) share per function, total (inclusive) share per
    function of the router's own code, and leaf share per package. Percentages are of all samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += n
        funcs = [_function(f) for f in frames]
        own[funcs[-1]] += n
        for func in set(funcs):
            if "(router/" in func and "__main__" not in func and "cli.py" not in func:
                total[func] += n
        groups[next((name for name, pat in GROUPS if pat in frames[-1]), "other")] += n
    share = lambda c: [(f, round(100 * n / max(samples, 1), 1)) for f, n in c.most_common(top)]  # noqa: E731
    return {"samples": samples, "own_pct": share(own), "total_pct": share(total), "by_package_pct": share(groups)}


def _function(frame: str) -> str:
    """``name (file.py:123)`` -> ``name (file.py)``: lines of one function counted together."""
    head, sep, tail = frame.rpartition(":")
    return f"{head})" if sep and tail.rstrip(")").isdigit() else frame


# --------------------------------------------------------------------------------------------- report


def fmt(key: str, value: float | None) -> str:
    if value is None or value != value:
        return "n/a"
    if key.startswith("tput_"):
        return f"{value:.3f}x"
    if key == "streams_400_lost":
        return f"{int(value)}"
    if key.startswith(("added_", "ttft_", "fallback_")):
        return f"{value:+.3f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def verdict(comparison: str | None, threshold: float | None, value: float | None) -> str:
    if comparison is None or threshold is None:
        return "-"
    if value is None or value != value:
        return "n/a"
    ok = value <= threshold if comparison == "le" else value >= threshold
    return "pass" if ok else "MISS"


def table(results: dict[str, float]) -> str:
    lines = ["| metric | measured | target | result |", "| --- | --- | --- | --- |"]
    for key, label, target, comparison, threshold in ROWS:
        value = results.get(key)
        lines.append(f"| {label} | {fmt(key, value)} | {target} | {verdict(comparison, threshold, value)} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(), "platform": platform.platform()}


PHASES = ("latency", "throughput", "fallback", "streaming", "classifier")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: every phase and row, tiny samples")
    parser.add_argument("--transport", choices=("aiohttp", "pyreqwest"), default=None,
                        help="run the router with this upstream transport (bench.transport_adapters) instead of http1")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per phase (default 3, --quick 1)")
    parser.add_argument("--json", type=Path, help="also write results, per-arm detail and machine info here")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the router under c=64 auto, to this file")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--cores", choices=("shared", "split"), default="shared",
                        help="shared: the three processes share every core (default); split: the router alone on "
                             "CPU 0, simulator and load generator on CPU 1, as a router on its own core would run")
    parser.add_argument("--only", default=",".join(PHASES),
                        help=f"comma-separated phases to run (default all: {','.join(PHASES)})")
    parser.add_argument("--state-url", help="router serve --state-url (e.g. a local redis://127.0.0.1:6379/0)")
    parser.add_argument("--workers", type=int, help="router serve --workers (needs --state-url)")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    q = args.quick
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        router_args = (*(("--state-url", args.state_url) if args.state_url else ()),
                       *(("--workers", str(args.workers)) if args.workers else ()))
        stack = Stack(Path(tmp), args.transport, router_args)
        bench = Bench(stack, args)
        try:
            bench.log(f"sim pid {stack.sim.pid}, router pid {stack.router.pid}, load pid {stack.load.pid}; {args.rounds} rounds")
            if args.cores == "split":
                stack.split_cores()
                bench.log("cores split: router on CPU 0, sim and load generator on CPU 1")
            only = set(args.only.split(","))
            if "latency" in only:
                bench.latency("0ms", PROFILE_0MS, 40 if q else 1000)
                bench.latency("20ms", PROFILE_20MS, 10 if q else 150)
            if "throughput" in only:
                bench.throughput(0.5 if q else 3.0)
            if "fallback" in only:
                bench.fallback(30 if q else 500)
            if "streaming" in only:
                bench.streaming(10 if q else 100, 100 if q else 300)
            if args.profile:
                bench.profile(args.profile, args.profile_seconds)
        except BaseException:
            for name in ("router.log", "sim.log", "load.log"):
                with contextlib.suppress(OSError):
                    sys.stderr.write(f"--- {name} (tail)\n" + (Path(tmp) / name).read_text()[-3000:] + "\n")
            raise
        finally:
            stack.close()
    if "classifier" in set(args.only.split(",")):
        bench.classifier(200 if q else 2000)
    info = machine()
    print(f"\nrouter vs direct: {args.rounds} interleaved round(s){' (quick)' if q else ''}, cores {args.cores}; "
          f"nproc={info['nproc']}, {info['cpu']}, Python {info['python']}; {time.monotonic() - started:.0f} s\n")
    print("Deltas are router minus direct at the same percentile (ms); ratios are router/direct.\n")
    print(table(bench.results))
    if "profile" in bench.detail:
        prof = bench.detail["profile"]
        print(f"\npy-spy, router under c=64 auto ({prof['samples']} samples)\nown:")
        for frame, share in prof["own_pct"]:
            print(f"  {share:5.1f}%  {frame}")
        print("total (router code, inclusive):")
        for frame, share in prof["total_pct"]:
            print(f"  {share:5.1f}%  {frame}")
        print("own, by package:")
        for frame, share in prof["by_package_pct"]:
            print(f"  {share:5.1f}%  {frame}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rounds": args.rounds, "quick": q, "cores": args.cores,
                                         "results": bench.results, "detail": bench.detail}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
