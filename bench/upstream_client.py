"""Client-side CPU per request of the upstream HTTP client: aiohttp (what the router used) against
``router.upstream.http1.Pool`` (what it uses), both sending the same request to the simulated upstream.

    .venv/bin/python -m bench.upstream_client [--requests 3000] [--rounds 2]

Sequential requests (c=1) after a warm-up, CPU time of this process only (``time.process_time``), so
the simulator's own work is not counted. Rounds alternate the two clients so drift hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bench.harness import free_port, wait_ready
from router.upstream.http1 import Pool

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps(
    {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hello there " * 20}]}
).encode()
HEADERS = {"content-type": "application/json", "x-api-key": "x", "anthropic-version": "2023-06-01", "accept-encoding": "identity"}


async def with_aiohttp(url: str, n: int) -> float:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False, skip_auto_headers=("User-Agent",)
    )

    async def one() -> None:
        timeout = aiohttp.ClientTimeout(total=600, sock_connect=10)  # as the router built one per attempt
        async with session.post(url + "/v1/messages", data=BODY, headers=HEADERS, timeout=timeout) as resp:
            await resp.read()
            dict(resp.headers.items())

    try:
        return await _timed(one, n)
    finally:
        await session.close()


async def with_http1(url: str, n: int) -> float:
    pool = Pool(url, connect_timeout=10)

    async def one() -> None:
        async with asyncio.timeout(600):
            resp = await pool.request("POST", "/v1/messages", HEADERS, BODY)
            await resp.read()
            resp.close()

    try:
        return await _timed(one, n)
    finally:
        await pool.close()


async def _timed(one, n: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(200):
        await one()
    start = time.process_time()
    for _ in range(n):
        await one()
    return (time.process_time() - start) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    import uvloop

    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "router", "sim", "--port", str(port), "--latency-ms", "0", "--tokens-per-s", "0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    results: dict[str, list[float]] = {"aiohttp": [], "http1": []}
    try:
        wait_ready(url + "/v1/models", sim, "sim")
        for rnd in range(args.rounds):
            order = ("aiohttp", "http1") if rnd % 2 == 0 else ("http1", "aiohttp")
            for name in order:
                run = with_aiohttp if name == "aiohttp" else with_http1
                results[name].append(round(uvloop.run(run(url, args.requests)), 1))
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    print(json.dumps({"client_cpu_us_per_request": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
