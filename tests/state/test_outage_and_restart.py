"""Failure and restart: Redis killed mid-load costs no request and no spend; a router killed with SIGKILL
keeps the month's spend (SQLite for the memory backend, Redis for the redis backend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path

from router.settings import Secret
from tests.conftest import POLICIES, ROOT
from tests.servers import free_port
from tests.state.helpers import call, concurrent, metric, scrape, tenants_yaml

BUDGET = "    budget: {monthly_usd: 1000.0}"


def spent(url: str) -> float:
    return metric(scrape(url), "router_tenant_budget_used_ratio", 'tenant="team-a"') * 1000.0


def _redis_spent(redis_server) -> float:
    """The tenant's month-to-date spend in Redis (0 while the key does not exist)."""
    reply = redis_server.command("GET", _spent_key())
    return 0.0 if reply.startswith(b"$-1") else float(reply.split(b"\r\n")[1])


def _until(what: str, condition, timeout: float = 30.0) -> None:
    """Poll ``condition`` (every 50 ms) until it holds; the deadline is generous because the machine may be
    busy, never a wait the test relies on."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.05)


def test_redis_killed_mid_load_costs_no_request_and_the_spend_is_reconciled(sim, make_router, redis_server):
    router = make_router(files={"tenants.yaml": tenants_yaml(BUDGET)}, state_url=Secret(redis_server.url), state_timeout=2.0)
    outcomes: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            outcomes.extend(concurrent([partial(call, router.url, stream=i % 2 == 0, max_tokens=16) for i in range(4)], 4))

    def served_more(n: int):
        mark = len(outcomes)
        return lambda: len(outcomes) >= mark + n

    worker = threading.Thread(target=load)
    worker.start()
    try:
        # Phases are entered on what the router reports, not after fixed sleeps: requests served and
        # spend in Redis before the kill; the degraded flag and requests served during the outage; the
        # flag cleared and requests served after Redis' return.
        _until("requests served with Redis up", served_more(8))
        _until("spend written to Redis", lambda: _redis_spent(redis_server) > 0)
        redis_server.kill()
        _until("degraded after the kill", lambda: metric(scrape(router.admin_url), "router_state_degraded") == 1.0)
        during = scrape(router.admin_url)
        _until("requests served during the outage", served_more(8))
        booked_before_restart = metric(scrape(router.admin_url), "router_tenant_spend_usd_total", 'tenant="team-a"')
        redis_server.start()  # same port and data directory (append-only file)
        _until("shared state restored", lambda: metric(scrape(router.admin_url), "router_state_degraded") == 0.0)
        _until("requests served after Redis' return", served_more(8))
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive()
    assert outcomes and set(outcomes) == {"ok"}, {o: outcomes.count(o) for o in set(outcomes)}
    assert metric(during, "router_state_degraded") == 1.0
    assert metric(during, "router_state_backend_errors_total") >= 1
    # Every dollar the router booked (before, during and after the outage) ends up in the shared ledger:
    # spend booked locally is handed over once Redis is back, the last settles are background writes.
    booked = lambda: metric(scrape(router.admin_url), "router_tenant_spend_usd_total", 'tenant="team-a"')  # noqa: E731
    _until("the shared ledger matches what was booked", lambda: abs(_redis_spent(redis_server) - booked()) < 1e-9, 15)
    assert booked() > booked_before_restart > 0
    assert metric(scrape(router.admin_url), "router_state_degraded") == 0.0


def _spent_key() -> str:
    from router.tenancy.spend import month_key

    return f"router:{{team-a}}:spent:{month_key(time.time())}"


class Serve:
    """``router serve`` as a real process against the session simulator."""

    def __init__(self, policies: Path, sim_url: str, *args: str) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ROUTER_", "PROMETHEUS_"))}
        env["ANTHROPIC_API_KEY"] = "sk-upstream-test-0000"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--port", str(self.port), "--admin-port", str(self.admin_port),
             "--policies", str(policies),
             "--models", str(ROOT / "models"), "--upstream-url", sim_url, "--log-level", "WARNING", *args],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60  # generous: a busy machine starts Python processes slowly
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        try:  # bounded: a worker that outlived its supervisor would hold stderr open
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            err = b"(stderr still open)"
        raise RuntimeError("router serve did not start: " + (err or b"").decode()[-2000:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(30)


def _policies(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    (target / "tenants.yaml").write_text(tenants_yaml(BUDGET))
    return target


def _spend_then_sigkill_then_restart(sim, tmp_path: Path, make_router, *args: str, **restart) -> tuple[float, float]:
    """Spend through a ``router serve`` process, SIGKILL it, then read the spend from a new router (in-process:
    it is the state that must survive, and one process start fewer keeps the test short)."""
    policies = _policies(tmp_path)
    first = Serve(policies, sim.url, *args)
    try:
        assert set(concurrent([partial(call, first.url, stream=i % 2 == 0) for i in range(6)], 6)) == {"ok"}
        time.sleep(1.3)  # at least one flush (every second)
        before = spent(first.admin_url)
    finally:
        first.kill(signal.SIGKILL)
    second = make_router(files={"tenants.yaml": tenants_yaml(BUDGET)}, **restart)
    return before, spent(second.admin_url)


def test_memory_backend_keeps_the_month_spend_across_sigkill(sim, tmp_path, make_router):
    ledger = tmp_path / "ledger.sqlite3"
    before, after = _spend_then_sigkill_then_restart(sim, tmp_path, make_router, "--ledger-path", str(ledger), ledger_path=ledger)
    assert before > 0 and abs(after - before) < 1e-9, (before, after)
    assert ledger.exists()


def test_redis_backend_keeps_the_month_spend_across_sigkill(sim, tmp_path, make_router, redis_server):
    before, after = _spend_then_sigkill_then_restart(
        sim, tmp_path, make_router, "--state-url", redis_server.url, state_url=Secret(redis_server.url)
    )
    assert before > 0 and abs(after - before) < 1e-9, (before, after)
