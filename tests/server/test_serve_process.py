"""``router serve`` as a real process: the README's run path (no key -> embedded simulator) and its logs
checked for prompts and keys. The README's client examples run in ``test_readme_examples``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anthropic
import pytest

from tests.conftest import ROOT, post
from tests.servers import free_port

SECRET_PROMPT = "zebra-quartz-7781 please keep this sentence private"
CLIENT_KEY = "sk-ant-client-secret-5512"
UPSTREAM_KEY = "sk-ant-upstream-secret-0917"


class ServeProcess:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"router-serve-{self.port}.log"
        self.log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--port", str(self.port), "--admin-port", str(self.admin_port), *args],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.admin_url + "/readyz", timeout=1) as resp:  # up after the client port
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("router serve did not become ready:\n" + self.log())

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()
        text = self.log_path.read_text(errors="replace")
        self.log_path.unlink(missing_ok=True)
        return text


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ROUTER_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def embedded():
    proc = ServeProcess(clean_env())
    yield proc
    proc.stop()


def test_without_a_key_it_serves_from_the_embedded_simulator_and_says_so(embedded):
    log = embedded.log()
    assert "SIMULATED upstream" in log
    with urllib.request.urlopen(embedded.admin_url + "/readyz", timeout=5) as resp:
        assert json.loads(resp.read())["upstream"] == "embedded-sim"
    client = anthropic.Anthropic(base_url=embedded.url, api_key="anything", max_retries=0)
    message = client.messages.create(model="auto", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, re.M), ".ci/run calls the README's test command"


def test_no_prompt_or_key_in_logs_at_the_default_level(sim):
    env = {**clean_env(), "ANTHROPIC_API_KEY": UPSTREAM_KEY}
    proc = ServeProcess(env, "--upstream-url", sim.url, "--first-content-timeout", "1")
    try:
        client = anthropic.Anthropic(base_url=proc.url, api_key=CLIENT_KEY, max_retries=0)
        messages = [{"role": "user", "content": SECRET_PROMPT}]
        client.messages.create(model="auto", max_tokens=16, messages=messages, system=SECRET_PROMPT)
        with client.messages.stream(model="opus", max_tokens=16, messages=messages) as stream:
            stream.get_final_message()
        # Failures log too: a fallback, an exhausted request, a bad body quoting the prompt, an unknown route.
        sim.faults({"kind": "overloaded", "model": "claude-opus-4-8", "count": 1})
        client.messages.create(model="opus", max_tokens=16, messages=messages)
        sim.faults({"kind": "server_error"})
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model="opus", max_tokens=16, messages=messages)
        post(proc.url + "/v1/messages", b'{"model": "' + SECRET_PROMPT.encode() + b'", oops', {"x-api-key": CLIENT_KEY})
        post(proc.url + "/v1/" + SECRET_PROMPT.replace(" ", "-"), b"{}", {"authorization": f"Bearer {CLIENT_KEY}"})
        assert sim.requests()[0]["headers"]["x-api-key"] == UPSTREAM_KEY
    finally:
        log = proc.stop()
    assert "router.access" in log, "requests are logged"
    assert '"attempts":["claude-opus-4-8:529","claude-sonnet-4-6:200"]' in log
    for secret in (SECRET_PROMPT, "zebra-quartz", CLIENT_KEY, UPSTREAM_KEY, UPSTREAM_KEY[-8:]):
        assert secret not in log


FREEZE_CHECK = """
import asyncio, gc, json
from router.server.serving import DrainingServer, uvicorn_config
from router.settings import Settings

async def main():
    settings = Settings.from_env({}, port=PORT, host="127.0.0.1")
    server = DrainingServer(uvicorn_config(settings, loop="asyncio"))
    before = gc.get_freeze_count()
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    after = gc.get_freeze_count()
    services = server.config.loaded_app.state.services
    listed = any(obj is services for obj in gc.get_objects())
    server.should_exit = True
    await task
    print(json.dumps({"before": before, "after": after, "services_collectable": listed}))

asyncio.run(main())
"""


def test_the_served_process_freezes_its_start_up_heap():
    """Once serving, the start-up heap (modules, app, policy, model) is out of the collector's reach, so
    no full collection walks it (a stall of ~170 ms on the bench machine); the services built by the
    lifespan are part of it."""
    code = FREEZE_CHECK.replace("PORT", str(free_port()))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0
    assert seen["after"] > 50_000
    assert seen["services_collectable"] is False


def test_a_taken_admin_port_fails_start_up_before_the_client_port_opens():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = free_port()
        result = subprocess.run(
            [sys.executable, "-m", "router", "serve", "--port", str(port), "--admin-port", str(busy)],
            cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
        )
    assert result.returncode != 0
    assert "Address already in use" in result.stderr and "Traceback" not in result.stderr
    assert "Application startup complete" not in result.stderr  # nothing was served


def test_demo_mode_marks_the_simulated_haiku_stage_and_keeps_it_out_of_the_learning_sink(tmp_path):
    """Issue 15, item 7: on the built-in simulator the Haiku stage's labels are synthetic (hashed from the
    prompt); they are marked ``haiku-sim`` in the answer's headers, the classify endpoint and the metrics,
    and never written to the learning sink as if Haiku had judged the request."""
    import shutil

    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests", "examples"))
    sink = tmp_path / "sink.jsonl"
    classifier = (policies / "classifier.yaml").read_text()
    classifier = re.sub(r"(?m)^confidence_threshold:.*$", "confidence_threshold: 1.0", classifier)
    classifier = re.sub(r"(?m)^learning_sink:.*$", f"learning_sink: {sink}", classifier)
    (policies / "classifier.yaml").write_text(classifier)
    proc = ServeProcess(clean_env(), "--policies", str(policies))
    try:
        client = anthropic.Anthropic(base_url=proc.url, api_key="anything", max_retries=0, timeout=20)
        raw = client.messages.with_raw_response.create(
            model="auto", max_tokens=16, messages=[{"role": "user", "content": "Plan a week of vegetarian dinners."}]
        )
        assert "stage=haiku-sim" in raw.headers["x-router-classification"]
        body = json.dumps({"prompt": "Prove that sqrt(2) is irrational."}).encode()
        status, _, payload = post(proc.admin_url + "/v1/router/classify", body, {"x-api-key": "anything"})
        assert status == 200 and json.loads(payload)["stage"] == "haiku-sim"
        with urllib.request.urlopen(proc.admin_url + "/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert re.search(r'router_classifications_total\{[^}]*stage="haiku-sim"[^}]*\} [1-9]', metrics)
        assert not re.search(r'router_classifications_total\{[^}]*stage="haiku"[^}]*\} [1-9]', metrics)
    finally:
        proc.stop()
    assert not sink.exists() or sink.read_text() == ""


def test_ctrl_c_drains_and_exits_without_a_traceback():
    proc = ServeProcess(clean_env())
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(20) == 130
    log = proc.stop()
    assert "Traceback" not in log, log[-2000:]
    assert "Application shutdown complete" in log and "router: interrupted" in log
