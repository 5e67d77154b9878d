"""The README's OpenAI SDK example, run as written (a subprocess with only the environment it documents)
against the router on the simulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def openai_example() -> tuple[str, dict[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## OpenAI SDK", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    exports = re.search(r"```sh\nexport (.*?)\n```", section, re.S)
    assert code and exports, "the README's OpenAI SDK section has a python example and its exports"
    env = dict(pair.split("=", 1) for pair in exports.group(1).split())
    return code.group(1), env


def test_readme_openai_example_runs_against_the_router(router, sim):
    code, documented = openai_example()
    assert documented["OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "ROUTER_"))}
    env.update(documented, OPENAI_BASE_URL=router.url + "/v1")  # the test router's port instead of 8080
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first, streamed, models = result.stdout.strip().splitlines()
    assert first.startswith("claude-") and len(first.split(" ", 1)[1]) > 10
    assert streamed.strip()
    assert models == "['auto', 'haiku', 'sonnet', 'opus']"
    assert [r["path"] for r in sim._call("GET", "/_sim/requests")["requests"]].count("/v1/chat/completions") == 2
