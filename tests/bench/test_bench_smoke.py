"""Smoke run of the benchmark harness: ``python -m bench.harness --quick`` completes end to end (sim, router
and load generator as separate processes) and prints the results table with every row.

Nothing about speed is asserted: the numbers depend on the machine and whatever else runs on it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.harness import ROWS

ROOT = Path(__file__).resolve().parents[2]


def test_quick_harness_prints_every_row() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.harness", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert "| metric | measured | target | result |" in out
    for _key, label, target, _cmp, _threshold in ROWS:
        row = next((line for line in out.splitlines() if line.startswith(f"| {label} |")), None)
        assert row is not None, f"missing row {label!r}\n{out}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 4 and cells[2] == target, row
        assert cells[1] != "n/a", f"row {label!r} has no measurement\n{proc.stderr[-4000:]}"


def test_upstream_client_comparison_runs_both_clients() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.upstream_client", "--requests", "30", "--rounds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    import json

    found = json.loads(proc.stdout)["client_cpu_us_per_request"]
    assert set(found) == {"aiohttp", "http1"}
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in found.values()), found


def test_paired_comparison_runs_both_builds() -> None:
    """``bench.compare`` against HEAD: both routers serve every arm and every figure is a number."""
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare", "HEAD", "--quick", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    for phase in ("latency_0ms", "latency_20ms", "ttft_1_stream"):
        for name in ("p50_concrete", "p50_auto", "p99_concrete", "p99_auto"):
            figures = report[phase][name]
            assert set(figures) == {"new_minus_old", "old_vs_direct", "new_vs_direct"}
            assert all(isinstance(v, float) and v == v for v in figures.values()), (phase, name, figures)
    for arm in ("old", "new", "old_auto", "new_auto"):
        assert report["c64"][arm]["router_cpu_ms_per_req"] > 0 and report["c64"][arm]["req_per_s"] > 0, report["c64"]


def test_idle_dependence_runs_every_case() -> None:
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "bench.idle", "--quick", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    for case in ("json_0ms", "json_3ms", "stream_20ms_first_token"):
        figures = report[case]
        assert figures["direct_p50_ms"] > 0, figures
        assert all(isinstance(figures[k], float) for k in ("added_p50_concrete_ms", "added_p50_auto_ms")), figures
    # The 3 ms upstream is really slower than the 0 ms one: the cases measure what they say.
    assert report["json_3ms"]["direct_p50_ms"] > report["json_0ms"]["direct_p50_ms"] + 2.0, report


def test_gc_pause_measures_both_ways() -> None:
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "bench.gc_pause", "--times", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert report["tracked_objects"] > 50_000 and report["frozen_objects"] > 50_000, report
    assert len(report["full_collection_ms"]) == 1 and len(report["full_collection_ms_frozen"]) == 1, report
