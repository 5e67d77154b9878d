"""``make fuzz`` and ``make soak`` run end to end at tiny sizes (seconds): the targets, their drivers
(``bench.fuzz_api``, ``bench.soak``) and the processes they start all work, and a clean run exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # BIN: this interpreter's venv (make's own default is .venv/bin, the same in CI); the stamp marks the
    # venv as installed so make does not reinstall it.
    bin_dir = str(Path(sys.executable).parent)
    stamp = subprocess.run(["make", "-s", "-p", "-n", "install"], cwd=ROOT, capture_output=True, text=True).stdout
    for line in stamp.splitlines():
        if line.startswith("STAMP := "):
            path = ROOT / line.split(":= ", 1)[1].strip()
            if path.parent.is_dir():
                path.touch(exist_ok=True)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(
        ["make", "-s", *args, f"BIN={bin_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_make_soak_runs_end_to_end() -> None:
    proc = make("soak", "SOAK_ARGS=--seconds 6 --interval 2 --workers 2", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| elapsed s | requests | errors | router RSS MiB | open fds |" in proc.stdout
    assert "OK: zero errors, RSS and descriptors flat" in proc.stdout
    assert "fallbacks" in proc.stdout


def test_make_fuzz_runs_end_to_end() -> None:
    proc = make("fuzz", "FUZZ_EXAMPLES=30", "API_EXAMPLES=5", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "schemathesis exit 0" in proc.stdout
