"""Client-side CPU per request of the upstream HTTP client, for each candidate transport, all sending the same
request to the simulated upstream through the router's transport interface (``bench.transport_adapters``).

    .venv/bin/python -m bench.upstream_client [--requests 3000] [--rounds 2]
        [--clients http1,aiohttp,pyreqwest,rnet] [--mode json,stream] [--out FILE]

Sequential requests (c=1) after a warm-up, CPU time of this process only (``time.process_time``: all its
threads, so a Rust client's runtime thread is counted), so the simulator's own work is not counted. Each
(client, mode) run gets a fresh event loop (uvloop) and transport. Rounds rotate the order of the clients
(and reverse it every other round) so drift hits all of them. ``json`` reads the answer with ``read()``;
``stream`` sends ``"stream": true`` and reads with ``chunk()`` until ``b""``.

``aiohttp-trust-env`` is aiohttp with ``trust_env=True`` (its own per-request proxy/netrc look-up).
``pyreqwest-consumed`` is pyreqwest's best case, outside the interface: ``build().send()`` reads the whole
body in Rust (usable only when the caller knows in advance it wants the whole body).

Output (JSON): ``client_cpu_us_per_request`` (the first mode's per-round CPU µs/request by client, the shape
this script always printed), ``cpu_us_per_request`` (per mode and client: median, min, max and the rounds),
the library versions, the machine's load average over the runs, and the median wall µs/request (the
round trip including the simulator's own time, for orientation only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import free_port, wait_ready
from bench.transport_adapters import library_versions, transport

ROOT = Path(__file__).resolve().parent.parent
_REQUEST = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hello there " * 20}]}
BODY = json.dumps(_REQUEST).encode()
STREAM_BODY = json.dumps({**_REQUEST, "stream": True}).encode()
HEADERS = {"content-type": "application/json", "x-api-key": "x", "anthropic-version": "2023-06-01", "accept-encoding": "identity"}
CLIENTS = ("http1", "aiohttp", "pyreqwest", "rnet", "pyreqwest-consumed", "aiohttp-trust-env")
VARIANTS = {"aiohttp-trust-env": ("aiohttp", {"trust_env": True})}
MODES = ("json", "stream")
WARMUP = 200


async def run_client(name: str, url: str, n: int, mode: str) -> tuple[float, float]:
    """(CPU µs/request, wall µs/request) of ``n`` sequential requests after a warm-up."""
    if name == "pyreqwest-consumed":
        return await _run_pyreqwest_consumed(url, n, mode)
    base, options = VARIANTS.get(name, (name, {}))
    t = transport(base, url, connect_timeout=10, **options)
    body = STREAM_BODY if mode == "stream" else BODY

    async def one_json() -> None:
        async with asyncio.timeout(600):
            resp = await t.request("POST", "/v1/messages", HEADERS, body)
            try:
                await resp.read()
            finally:
                resp.close()

    async def one_stream() -> None:
        async with asyncio.timeout(600):
            resp = await t.request("POST", "/v1/messages", HEADERS, body)
            try:
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}: {await resp.read()!r}")
                while await resp.chunk(30.0):
                    pass
            finally:
                resp.close()

    try:
        return await _timed(one_stream if mode == "stream" else one_json, n)
    finally:
        await t.close()


async def _run_pyreqwest_consumed(url: str, n: int, mode: str) -> tuple[float, float]:
    from datetime import timedelta

    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder().connect_timeout(timedelta(seconds=10)).follow_redirects(False).gzip(False).brotli(False)
        .zstd(False).deflate(False).build()
    )
    body = STREAM_BODY if mode == "stream" else BODY
    target = url + "/v1/messages"

    async def one() -> None:
        async with asyncio.timeout(600):
            resp = await client.request("POST", target).headers(HEADERS).body_bytes(body).build().send()
            (await resp.bytes()).to_bytes()
            list(resp.headers.items())

    try:
        return await _timed(one, n)
    finally:
        await client.close()


async def _timed(one, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for _ in range(WARMUP):
        await one()
    wall = time.perf_counter()
    start = time.process_time()
    for _ in range(n):
        await one()
    cpu = time.process_time() - start
    wall = time.perf_counter() - wall
    return cpu / n * 1e6, wall / n * 1e6


def round_order(clients: list[str], rnd: int) -> list[str]:
    """Rotate by half the round number; reverse odd rounds (two clients: ab, ba, ba, ab, ab, ...)."""
    k = (rnd // 2) % len(clients)
    order = clients[k:] + clients[:k]
    return order[::-1] if rnd % 2 else order


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1), "max": round(max(values), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--clients", default="http1,aiohttp",
        help=f"comma-separated, of {','.join(CLIENTS)} (pyreqwest and rnet must be pip-installed)",
    )
    parser.add_argument("--mode", default="json", help="comma-separated, of json,stream")
    parser.add_argument("--out", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    for name in clients:
        if name not in CLIENTS:
            parser.error(f"unknown client {name!r} (one of {', '.join(CLIENTS)})")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r} (json or stream)")
    import uvloop

    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "router", "sim", "--port", str(port), "--latency-ms", "0", "--tokens-per-s", "0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    cpu: dict[str, dict[str, list[float]]] = {m: {c: [] for c in clients} for m in modes}
    wall: dict[str, dict[str, list[float]]] = {m: {c: [] for c in clients} for m in modes}
    load: list[float] = []  # the machine's 1-minute load average after each run: how contended it was
    try:
        wait_ready(url + "/v1/models", sim, "sim")
        for rnd in range(args.rounds):
            for mode in modes:
                for name in round_order(clients, rnd):
                    c, w = uvloop.run(run_client(name, url, args.requests, mode))
                    cpu[mode][name].append(round(c, 1))
                    wall[mode][name].append(round(w, 1))
                    load.append(os.getloadavg()[0])
                    print(
                        f"round {rnd} {mode:6} {name:18} cpu {c:7.1f} µs  wall {w:7.1f} µs  load {load[-1]:.2f}",
                        file=sys.stderr, flush=True,
                    )
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    result = {
        "requests_per_run": args.requests,
        "rounds": args.rounds,
        "versions": library_versions(),
        # As before this script took --clients/--mode: the first mode's per-round figures, by client.
        "client_cpu_us_per_request": cpu[modes[0]],
        "cpu_us_per_request": {m: {c: {**summarize(v), "rounds": v} for c, v in cpu[m].items()} for m in modes},
        "cpus": os.cpu_count(),
        "load_average_1m": summarize(load) if load else None,
        "wall_us_per_request_median": {m: {c: round(statistics.median(v), 1) for c, v in wall[m].items()} for m in modes},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
