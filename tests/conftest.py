"""Shared fixtures: one simulated upstream per session (reset before each test), a fresh router per test.

A fresh router per test keeps cooldowns from leaking between tests; the simulator's control endpoints
replace its faults without a restart.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest

from router.settings import Secret, Settings
from router.sim.config import LatencyProfile, SimConfig
from router.sim.server import start_sim
from tests.servers import LoopThread, RouterThread, free_port

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
UPSTREAM_KEY = "sk-upstream-test-6f1d"
CLIENT_KEY = "sk-client-test-93ab"


class SimHandle:
    """The running simulator plus helpers that drive its control endpoints over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def faults(self, *rules: dict[str, Any]) -> None:
        self._call("PUT", "/_sim/faults", {"faults": list(rules)})

    def profiles(self, profiles: dict[str, dict[str, Any]]) -> None:
        self._call("PUT", "/_sim/profiles", {"profiles": profiles})

    def reset(self) -> None:
        self._call("POST", "/_sim/reset", {})

    def requests(self, *, triage: bool = False) -> list[dict[str, Any]]:
        """What the simulator received; the router's own Haiku triage calls only with ``triage=True``."""
        seen = self._call("GET", "/_sim/requests")["requests"]
        return [r for r in seen if triage or not is_triage_call(r)]

    def models_seen(self) -> list[str]:
        return [r["model"] for r in self.requests() if r["path"].startswith("/v1/messages")]


def is_triage_call(request: dict[str, Any]) -> bool:
    body = request.get("body") or {}
    choice = body.get("tool_choice") if isinstance(body, dict) else None
    # An OpenAI-shaped tool_choice may be a string ("required", "auto"): not the triage call.
    return isinstance(choice, dict) and choice.get("name") == "classify"


@pytest.fixture(scope="session")
def sim() -> Any:
    loop = LoopThread()
    config = SimConfig(profiles={"*": LatencyProfile(ttft_ms=0, tokens_per_s=0, output_tokens=12)}, faults=[])
    server = loop.run(start_sim(config, "127.0.0.1", 0))
    yield SimHandle(server.url)
    loop.run(server.close())
    loop.stop()


@pytest.fixture(autouse=True)
def _fresh_sim(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").reset()


@pytest.fixture
def make_router(sim: SimHandle, tmp_path: Path) -> Any:
    """Start a router in front of the simulator; keyword arguments override Settings, ``tiers`` the table,
    ``transport`` the upstream transport factory."""
    started: list[RouterThread] = []

    def start(
        tiers_yaml: str | None = None, files: dict[str, str] | None = None, transport: Any = None, **overrides: Any
    ) -> RouterThread:
        policies = tmp_path / f"policies{len(started)}"
        shutil.copytree(POLICIES, policies)
        if tiers_yaml is not None:
            (policies / "tiers.yaml").write_text(tiers_yaml)
        for name, text in (files or {}).items():
            (policies / name).write_text(text)
        values: dict[str, Any] = {
            "port": free_port(),
            "policies_dir": policies,
            "models_dir": ROOT / "models",
            "upstream_url": sim.url,
            "upstream_key": Secret(UPSTREAM_KEY),
            "request_timeout": 30.0,
            "first_content_timeout": 5.0,
            "stream_idle_timeout": 5.0,
            **overrides,
        }
        router = RouterThread(Settings(**values), transport).start()
        started.append(router)
        return router

    yield start
    for router in started:
        router.stop()


@pytest.fixture
def router(make_router: Any) -> RouterThread:
    return make_router()  # type: ignore[no-any-return]


def sdk_client(router: RouterThread, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key=CLIENT_KEY, max_retries=0, timeout=20, **kwargs)


def post(url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP request, for what the SDK would not send (bad JSON, missing key, odd methods)."""
    req = urllib.request.Request(url, data=body if method != "GET" else None, method=method)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()
