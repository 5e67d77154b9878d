"""``router serve --workers 2``: the status page's JSON is the sum over the workers, like ``/metrics``,
whichever worker answers it."""

from __future__ import annotations

import json
import urllib.request
from functools import partial

import pytest

from tests.state.helpers import call, concurrent, metric, scrape
from tests.state.test_outage_and_restart import Serve, _policies


def status(admin_url: str) -> dict:
    with urllib.request.urlopen(admin_url + "/v1/router/status", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_status_sums_over_workers(sim, tmp_path, redis_server):
    serve = Serve(_policies(tmp_path), sim.url, "--workers", "2", "--state-url", redis_server.url)
    try:
        jobs = [partial(call, serve.url, stream=i % 2 == 0, model="auto", max_tokens=8) for i in range(24)]
        assert set(concurrent(jobs, 8)) == {"ok"}
        pids = set()
        for _ in range(30):  # new connections land on either worker
            s = status(serve.admin_url)
            pids.add(s["state"]["pid"])
            assert s["totals"]["requests"] == 24 and s["totals"]["errors"] == 0
            assert s["auto"]["requests"] == 24 and s["triage"]["classifications"] == 24
            assert sum(t["requests"] for t in s["tiers"]) == 24
        assert len(pids) == 2, ("both workers answered", pids)
        text = scrape(serve.admin_url)
        assert s["cost"]["serving_usd"] > 0
        assert s["cost"]["serving_usd"] == pytest.approx(metric(text, "router_cost_usd_total", 'purpose="serving"'))
        spent = metric(text, "router_tenant_spend_usd_total", 'tenant="team-a"')
        assert s["tenants"][0]["spent_since_start_usd"] == pytest.approx(spent)
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait(10)
