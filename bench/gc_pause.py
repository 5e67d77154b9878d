"""The pause a full garbage collection costs in a router process, with and without the start-up heap
frozen (what ``router.server.serving.freeze_heap`` does once the server is up).

    python -m bench.gc_pause [--times 3]

Builds the app and its services (policy, classifier model, upstream client) as ``router serve`` does,
then times ``gc.collect()`` before and after ``gc.freeze()``, in this one process. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time

from router.server.app import create_app
from router.server.lifespan import build_services
from router.settings import Settings


def _collect_ms() -> float:
    start = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - start) * 1000


async def measure(times: int) -> dict[str, object]:
    settings = Settings.from_env({}, port=0)
    create_app(settings)
    async with build_services(settings):
        tracked = len(gc.get_objects())
        before = [round(_collect_ms(), 3) for _ in range(times)]
        gc.freeze()
        after = [round(_collect_ms(), 3) for _ in range(times)]
        frozen = gc.get_freeze_count()
        gc.unfreeze()
    return {"tracked_objects": tracked, "full_collection_ms": before, "frozen_objects": frozen,
            "full_collection_ms_frozen": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.times)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
