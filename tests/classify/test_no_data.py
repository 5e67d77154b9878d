"""``router train`` / ``eval`` / ``calibrate`` without the labelled data: one clear line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("command", [["train"], ["eval"], ["calibrate"]])
def test_missing_data_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no-data-here"
    result = subprocess.run(
        [sys.executable, "-m", "router", *command, "--data", str(missing)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "--data" in lines[0], result.stderr
