"""Load generator worker for ``bench.harness``: a separate process driven over a pipe.

    python -m bench.load        # reads one JSON command per stdin line, writes one JSON result per stdout line

A command runs one load phase against one URL with aiohttp (connector limit = concurrency, a fresh
session per phase, warmed up before timing) and returns per-request measurements taken with
``time.perf_counter``:

    {"url": ..., "headers": {...}, "bodies": [bytes-as-str, ...], "concurrency": C,
     "requests": N | "duration": S, "warmup": W, "stream": false, "collect_header": "x-router-attempts"}

Result: ``lat_ms`` (request start to last byte), ``ttft_ms`` (streams: start to the first
``content_block_delta`` frame), ``frames`` and ``sigs`` (streams: frames per stream and a digest of its event
sequence and text, indexed by request number), ``status`` counts, ``errors``, ``elapsed_s``, ``count``.
Request ``i`` sends ``bodies[i % len(bodies)]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from typing import Any

import aiohttp


async def _one(session: aiohttp.ClientSession, cmd: dict[str, Any], body: bytes, out: dict[str, Any], index: int | None) -> None:
    stream = cmd.get("stream", False)
    collect = cmd.get("collect_header")
    start = time.perf_counter()
    ttft = None
    try:
        async with session.post(cmd["url"], data=body, headers=cmd["headers"]) as resp:
            status = resp.status
            if collect:
                out["collected"].append(resp.headers.get(collect, ""))
            if stream and status == 200:
                events: list[str] = []
                texts: list[str] = []
                event = ""
                async for raw in resp.content:
                    line = raw.rstrip(b"\r\n")
                    if line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                        events.append(event)
                    elif line.startswith(b"data:") and event == "content_block_delta":
                        if ttft is None:
                            ttft = time.perf_counter() - start
                        if cmd.get("signatures"):
                            texts.append(json.loads(line[5:]).get("delta", {}).get("text", ""))
                if index is not None:
                    digest = hashlib.sha1("\n".join(events).encode() + b"\0" + "".join(texts).encode()).hexdigest()
                    out["frames"][index] = len(events)
                    out["sigs"][index] = digest
                    out["complete"][index] = bool(events) and events[-1] == "message_stop"
            else:
                await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        out["errors"] += 1
        out["error_kinds"][type(exc).__name__] = out["error_kinds"].get(type(exc).__name__, 0) + 1
        return
    elapsed = time.perf_counter() - start
    out["status"][str(status)] = out["status"].get(str(status), 0) + 1
    if status == 200:
        out["lat_ms"].append(elapsed * 1000)
        if ttft is not None:
            out["ttft_ms"].append(ttft * 1000)


async def run(cmd: dict[str, Any]) -> dict[str, Any]:
    concurrency = int(cmd["concurrency"])
    bodies = [b.encode() for b in cmd["bodies"]]
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=cmd.get("timeout_s", 120))
    out: dict[str, Any] = {
        "lat_ms": [], "ttft_ms": [], "status": {}, "errors": 0, "error_kinds": {}, "collected": [],
        "frames": {}, "sigs": {}, "complete": {},
    }
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm-up: open the connections and let both servers reach steady state; not measured.
        warm = {**out, "lat_ms": [], "ttft_ms": [], "status": {}, "collected": [], "error_kinds": {}, "errors": 0}
        warmup = int(cmd.get("warmup", concurrency))
        if warmup:
            sem = asyncio.Semaphore(concurrency)

            async def warm_one(i: int) -> None:
                async with sem:
                    await _one(session, {**cmd, "collect_header": None, "signatures": False}, bodies[i % len(bodies)], warm, None)

            await asyncio.gather(*(warm_one(i) for i in range(warmup)))
        counter = iter(range(10**9))
        total = cmd.get("requests")
        stop_at = None
        per_request_index = cmd.get("stream", False)

        async def worker() -> None:
            while True:
                i = next(counter)
                if total is not None and i >= total:
                    return
                if stop_at is not None and time.perf_counter() >= stop_at:
                    return
                await _one(session, cmd, bodies[i % len(bodies)], out, i if per_request_index else None)

        started = time.perf_counter()
        if total is None:
            stop_at = started + float(cmd["duration"])
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        out["elapsed_s"] = time.perf_counter() - started
    out["count"] = len(out["lat_ms"])
    return out


def main() -> int:
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            result = loop.run_until_complete(run(cmd))
        except Exception as exc:  # reported to the harness, which decides
            result = {"fatal": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
