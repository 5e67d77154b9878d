"""Settling on Redis through the writer queue: settlements that queue up together go in one pipelined round
trip, a drain (SIGTERM) writes every one of them, and a dead Redis books them locally -- never lost."""

from __future__ import annotations

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from router.state.redis_state import RedisState
from router.tenancy.spend import month_key
from router.tenancy.state import SETTLE_BATCH, Reservation, Tenancy
from tests.state.helpers import KEY
from tests.state.test_outage_and_restart import Serve, _policies


def _spent(redis_server, tenant: str) -> float:
    reply = redis_server.command("GET", f"router:{{{tenant}}}:spent:{month_key(time.time())}")
    return 0.0 if reply.startswith(b"$-1") else float(reply.split(b"\r\n")[1])


def _reservation(tenant: str) -> Reservation:
    return Reservation(tenant, 0, 0.0, None, None, True, "", month_key(time.time()))


async def _settle_all(url: str, n: int, usd: float) -> Tenancy:
    tenancy = Tenancy(remote=RedisState(url, 2.0))
    await tenancy.start()
    for _ in range(n):  # all queued before the writer runs: the loop does not yield in between
        tenancy.settle(_reservation("team-q"), 10, usd)
    await tenancy.close()
    assert tenancy.remote is not None
    await tenancy.remote.close()
    return tenancy


@pytest.mark.parametrize("n", [50, 3 * SETTLE_BATCH + 1])
def test_settlements_queued_together_share_round_trips_and_close_writes_them_all(redis_server, n):
    tenancy = asyncio.run(_settle_all(redis_server.url, n, 0.25))
    assert _spent(redis_server, "team-q") == pytest.approx(n * 0.25, abs=1e-9)
    assert tenancy.settle_trips == -(-n // SETTLE_BATCH), "one round trip per batch of queued settlements"
    assert tenancy.ledger.spent("team-q") == 0.0, "nothing left to hand over"


def test_settlements_with_redis_gone_are_booked_locally(redis_server):
    redis_server.kill()
    tenancy = asyncio.run(_settle_all(redis_server.url, 20, 0.5))
    assert tenancy.settle_trips == 0
    assert tenancy.ledger.spent("team-q") == pytest.approx(10.0), "kept for the hand-over when Redis returns"


def test_sigterm_right_after_the_answers_writes_every_settlement(sim, tmp_path, redis_server):
    import anthropic

    router = Serve(_policies(tmp_path), sim.url, "--state-url", redis_server.url)
    c = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0, timeout=30)
    try:
        def one(i: int) -> float:
            raw = c.messages.with_raw_response.create(
                model="opus", max_tokens=16, messages=[{"role": "user", "content": f"Say hello {i}."}]
            )
            assert raw.headers["x-router-model"] == "claude-opus-4-8"
            usage = raw.parse().usage
            return (usage.input_tokens * 5 + usage.output_tokens * 25) / 1_000_000  # Opus 4.8's prices

        with ThreadPoolExecutor(16) as pool:
            expected = sum(pool.map(one, range(48)))
    finally:
        router.kill(signal.SIGTERM)  # at once: the last settlements are still queued
    # uvicorn re-raises SIGTERM once it has shut down gracefully: -15 is a clean exit here.
    assert router.proc.returncode in (0, -signal.SIGTERM)
    assert expected > 0
    assert _spent(redis_server, "team-a") == pytest.approx(expected, abs=1e-9)
    reserved = redis_server.command("GET", f"router:{{team-a}}:reserved:{month_key(time.time())}")
    assert reserved.startswith(b"$-1") or float(reserved.split(b"\r\n")[1]) < 1e-9, reserved
