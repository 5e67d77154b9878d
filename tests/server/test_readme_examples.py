"""Issue 15, item 8: every client example in the README's "Point an app at it" section runs as written
against a real ``router serve`` on the built-in simulator -- the environment exports, the Python example,
the TypeScript one as an ES module (with ``tsx``, as the README says), and curl.

The TypeScript example needs Node.js and the npm registry: the packages are installed once into
``.venv/readme-node`` (ignored by git). Without ``node``/``npm`` the test skips locally and fails in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.server.test_serve_process import ServeProcess, clean_env

SECTION = "## Point an app at it"


def client_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", client_section(), re.S)


def readme_exports() -> dict[str, str]:
    """The variables the section's ``export`` block sets, as the shell would (comments dropped)."""
    block = next(b for b in code_blocks("sh") if "export " in b)
    found = dict(re.findall(r"^export (\w+)=(\S+)", block, re.M))
    assert {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"} <= set(found), block
    return found


@pytest.fixture(scope="module")
def demo():
    proc = ServeProcess(clean_env())
    yield proc
    proc.stop()


def example_env(demo: ServeProcess) -> dict[str, str]:
    exports = readme_exports()
    assert exports["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8080", "the README names the default address"
    # The README's address, moved to the port this test's router listens on.
    exports["ANTHROPIC_BASE_URL"] = demo.url
    return {**clean_env(), **exports}


def test_the_python_example_runs_as_written(demo):
    (example,) = code_blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", example], env=example_env(demo), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    model, _, answer = result.stdout.strip().partition(" ")
    assert model.startswith("claude-") and answer, result.stdout


def test_the_curl_example_runs_as_written(demo):
    if shutil.which("curl") is None:
        pytest.fail("curl is needed for the README's curl example") if os.environ.get("CI") else pytest.skip("no curl")
    (example,) = [b for b in code_blocks("sh") if b.lstrip().startswith("curl ")]
    result = subprocess.run(["bash", "-c", example], env=example_env(demo), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/1.1 200"), result.stdout[:200]
    assert '"type":"message"' in result.stdout.replace(" ", "")


def node_packages() -> Path:
    """``@anthropic-ai/sdk`` and ``tsx`` installed once into the venv, as the README's npm line says."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed in CI for the README's TypeScript example")
        pytest.skip("node/npm not installed")
    where = ROOT / ".venv" / "readme-node"
    if not (where / "node_modules" / ".bin" / "tsx").exists():
        where.mkdir(parents=True, exist_ok=True)
        (where / "package.json").write_text('{"private": true, "type": "module"}\n')
        install = re.search(r"`npm install ([^`]+)`", client_section())
        assert install, "the README says what to npm install"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", *install.group(1).split()],
            cwd=where, check=True, timeout=300, capture_output=True,
        )
    return where


def test_the_typescript_example_runs_as_an_es_module(demo):
    where = node_packages()
    (example,) = code_blocks("ts")
    (where / "example.mts").write_text(example)
    result = subprocess.run(
        [str(where / "node_modules" / ".bin" / "tsx"), "example.mts"],
        cwd=where, env=example_env(demo), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model, _, answer = result.stdout.strip().partition(" ")
    assert model.startswith("claude-") and answer, result.stdout
