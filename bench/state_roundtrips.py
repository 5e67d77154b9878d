"""Redis round trips per request: what ``router serve --state-url`` sends to Redis for each request, counted
on the server side with ``MONITOR``.

    python -m bench.state_roundtrips [--requests 200]

Starts its own ``redis-server`` (free loopback port, no persistence), a simulator and, per scenario, one
router on that Redis; sends ``--requests`` JSON requests one at a time and counts the commands Redis saw
from the router's connections while they ran (commands run inside a Lua script are not round trips and
are left out; the router's once-a-second background reads are counted separately). Scenarios:

* ``anonymous``: the shipped policy, no tenants file (the harness's case: no limits, no budget);
* ``limited``: a tenant with a rate limit and a monthly budget;
* ``limited+sticky``: the same tenant and a sticky rule.

Prints one JSON object: per scenario, commands per request by name and the total. Numbers, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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

from bench.harness import ROOT, bench_policies, free_port, wait_ready
from router.policy.keys import hash_key

KEY = "sk-bench-roundtrips-0123456789abcdef"
TENANT = f"""tenants:
  bench:
    keys: ["{hash_key(KEY)}"]
    rate_limit: {{requests_per_minute: 1000000, tokens_per_minute: 100000000}}
    budget: {{monthly_usd: 100000}}
"""
STICKY = "rules:\n  - name: sticky-default\n    then: {tier: requested, sticky: true}\n"
SCENARIOS: dict[str, dict[str, str]] = {
    "anonymous": {},
    "limited": {"tenants.yaml": TENANT},
    "limited+sticky": {"tenants.yaml": TENANT, "rules.yaml": STICKY},
}
BACKGROUND = {"mget", "ping"}
"""Commands the router sends once a second whatever the traffic (budget gauge refresh, health probe)."""
_LINE = re.compile(r'^\+?[0-9.]+ \[\d+ ([^\]]+)\] "([A-Za-z]+)"')


class Monitor(threading.Thread):
    """``MONITOR`` on its own connection; counts top-level commands while ``counting`` is set."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"MONITOR\r\n")
        self.counting = threading.Event()
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def run(self) -> None:
        buffer = b""
        self.sock.settimeout(None)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            for raw in lines:
                match = _LINE.match(raw.decode(errors="replace"))
                if match is None or match.group(1) == "lua":
                    continue  # "OK" and commands a script ran
                if self.counting.is_set():
                    with self.lock:
                        self.counts[match.group(2).lower()] += 1

    def take(self) -> Counter[str]:
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts


def command(port: int, line: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(line.encode() + b"\r\n")
        return s.recv(65536)


def post(url: str, key: str, n: int) -> None:
    for i in range(n):
        # A new conversation every 4th request, so the sticky scenario has reads that find a route and
        # reads that do not.
        payload = {"model": "claude-sonnet-4-6", "max_tokens": 16,
                   "messages": [{"role": "user", "content": f"Say hello ({i // 4})."}]}
        req = urllib.request.Request(url + "/v1/messages", data=json.dumps(payload).encode(), method="POST")
        req.add_header("x-api-key", key)
        req.add_header("content-type", "application/json")
        req.add_header("anthropic-version", "2023-06-01")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    env = {**os.environ, "ANTHROPIC_API_KEY": "x", "ROUTER_LOG_LEVEL": "WARNING"}
    report: dict[str, Any] = {"requests": args.requests}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="roundtrips-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            redis_port, sim_port = free_port(), free_port()
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "router", "sim", "--port", str(sim_port), "--latency-ms", "0", "--tokens-per-s", "0"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            sim_url = f"http://127.0.0.1:{sim_port}"
            wait_ready(sim_url + "/v1/models", procs[-1], "sim")
            deadline = time.monotonic() + 10
            while b"PONG" not in (command(redis_port, "PING") if _listening(redis_port) else b""):
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            for name, files in SCENARIOS.items():
                command(redis_port, "FLUSHALL")
                policies = bench_policies(tmp / name)
                for file, text in files.items():
                    (policies / file).write_text(text)
                port = free_port()
                router = subprocess.Popen(
                    [sys.executable, "-m", "router", "serve", "--port", str(port), "--admin-port", "0",
                     "--upstream-url", sim_url, "--policies", str(policies), "--log-level", "WARNING",
                     "--state-url", f"redis://127.0.0.1:{redis_port}/0"],
                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "wb"))
                procs.append(router)
                url = f"http://127.0.0.1:{port}"
                wait_ready(url + "/livez", router, "router")
                key = KEY if files else "bench"
                post(url, key, 20)  # warm-up: scripts loaded, pool connections open
                time.sleep(0.3)
                monitor = Monitor(redis_port)
                monitor.start()
                time.sleep(0.2)
                monitor.counting.set()
                started = time.monotonic()
                post(url, key, args.requests)
                time.sleep(0.3)  # writes that run after the reply (settle, remember) land
                elapsed = time.monotonic() - started
                monitor.counting.clear()
                counts = monitor.take()
                monitor.sock.close()
                router.terminate()
                router.wait(10)
                per_request = {c: round(n / args.requests, 3) for c, n in sorted(counts.items()) if c not in BACKGROUND}
                report[name] = {
                    "per_request": per_request,
                    "commands_per_request": round(sum(per_request.values()), 3),
                    "background_per_second": {c: round(counts[c] / elapsed, 2) for c in sorted(BACKGROUND & set(counts))},
                }
                print(name, json.dumps(report[name]), file=sys.stderr, flush=True)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(json.dumps(report, indent=2))
    return 0


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
