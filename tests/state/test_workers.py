"""``router serve --workers 2 --state-url``: one port, two processes, metrics summed, both drained on SIGTERM;
and ``--workers 2`` without shared state is refused with the reason."""

from __future__ import annotations

import signal
import time
from functools import partial

from router.cli.main import main
from tests.state.helpers import call, concurrent, metric, scrape
from tests.state.test_local_state import readyz
from tests.state.test_outage_and_restart import Serve, _policies


def test_two_workers_share_one_port_sum_their_metrics_and_drain_on_sigterm(sim, tmp_path, redis_server):
    serve = Serve(_policies(tmp_path), sim.url, "--workers", "2", "--state-url", redis_server.url)
    try:
        outcomes = concurrent([partial(call, serve.url, stream=False, max_tokens=8) for _ in range(40)], 8)
        assert set(outcomes) == {"ok"}
        pids = set()
        # New connections land on either worker (both listeners are shared): each /metrics has both counts.
        # Until both answered, up to a generous deadline (on a busy machine the second may still be starting).
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            assert metric(scrape(serve.admin_url), "router_requests_total", 'outcome="ok"') == 40
            pids.add(readyz(serve.admin_url)["state"]["pid"])
        assert len(pids) == 2, ("both workers answered", pids)
        # Slow streams in flight when SIGTERM arrives must all finish.
        sim.profiles({"*": {"ttft_ms": 300, "tokens_per_s": 20, "output_tokens": 40}})
        import threading

        results: list[str] = []
        runner = threading.Thread(
            target=lambda: results.extend(concurrent([partial(call, serve.url, stream=True) for _ in range(6)], 6))
        )
        runner.start()
        deadline = time.monotonic() + 20
        while metric(scrape(serve.admin_url), "router_requests_in_flight") < 6 and time.monotonic() < deadline:
            time.sleep(0.05)  # every stream is in flight (the gauge is summed over both workers)
        serve.proc.send_signal(signal.SIGTERM)
        runner.join(30)
        assert serve.proc.wait(30) == 0
        assert results == ["ok"] * 6, results
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()


def test_several_workers_without_shared_state_are_refused(capsys, monkeypatch):
    monkeypatch.delenv("ROUTER_STATE_URL", raising=False)
    assert main(["serve", "--workers", "2", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--state-url" in err and "worker" in err


def test_workers_drain_and_exit_when_the_supervisor_is_killed(sim, tmp_path, redis_server):
    import os

    serve = Serve(_policies(tmp_path), sim.url, "--workers", "2", "--state-url", redis_server.url)
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:  # new connections land on either worker
            pids.add(readyz(serve.admin_url)["state"]["pid"])
        assert len(pids) == 2, pids
        serve.kill(signal.SIGKILL)  # the supervisor cannot forward anything now

        def alive(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            return True

        deadline = time.monotonic() + 30
        while any(alive(p) for p in pids):
            assert time.monotonic() < deadline, "a worker kept running after its supervisor was killed"
            time.sleep(0.05)
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
