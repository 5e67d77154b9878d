"""The package layering holds: import-linter checks the contracts in ``pyproject.toml`` on the real import
graph (every import, including those inside functions)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(config: Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is a test dependency"
    command = [exe, "--config", str(config), "--no-cache"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_layer_contracts_are_kept() -> None:
    result = _lint(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: a copy of the package where the policy layer imports the gateway is refused."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "router", copy / "router", ignore=shutil.ignore_patterns("__pycache__"))
    bad = copy / "router" / "policy" / "upward.py"
    bad.write_text("from router.gateway import plan\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    result = _lint(config, cwd=copy, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "router.policy.upward -> router.gateway" in result.stdout
