"""The status page in a real headless browser: Debian's chromium driven by Playwright (never Playwright's
own browser downloads). The page renders from the admin listener, its numbers move after traffic sent
with the anthropic SDK (auto requests, a fallback after a simulated 429), with no console errors, page
errors or failed requests; strings from the JSON are shown as text, never parsed as HTML; a failing
fetch shows the error banner. A screenshot is saved to ``artifacts/status-page.png`` (or
``$ROUTER_TEST_ARTIFACTS``).

Without ``/usr/bin/chromium`` the test skips locally and fails in CI (``CI`` set): ``.ci/run`` installs it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anthropic
import pytest

from router.policy.keys import hash_key
from tests.conftest import ROOT

KEY_A = "sk-router-status-page-a-2291"
KEY_B = "sk-router-status-page-b-8834"
TENANTS = (
    "tenants:\n"
    f"  team-a:\n    keys: [\"{hash_key(KEY_A)}\"]\n    budget: {{monthly_usd: 0.01}}\n"
    f"  team-b:\n    keys: [\"{hash_key(KEY_B)}\"]\n"
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REFRESH_MS = 300


def _artifacts() -> Path:
    directory = Path(os.environ.get("ROUTER_TEST_ARTIFACTS") or ROOT / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Any:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=15_000)
        yield chromium
        chromium.close()


class Watched:
    """A page with every console error, page error, failed request and HTTP error response recorded."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(5_000)
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))

    def close(self) -> None:
        self.context.close()


def test_the_status_page_renders_and_moves_with_traffic(browser, make_router, sim):
    from playwright.sync_api import expect

    router = make_router(files={"tenants.yaml": TENANTS})
    watched = Watched(browser)
    page = watched.page
    try:
        page.goto(f"{router.admin_url}/?refresh={REFRESH_MS}")
        expect(page).to_have_title("Triage router status")
        expect(page.locator("#status-pill")).to_have_text("ready")
        for card in ("requests", "errors", "savings", "spent", "auto", "triage", "fallbacks", "cooling"):
            expect(page.locator(f"#card-{card} .value")).to_be_visible()
        expect(page.locator("#card-requests .value")).to_have_text("0")
        expect(page.locator("#card-requests .sub")).to_have_text("no traffic yet")
        expect(page.locator("#panel-tiers tbody")).to_contain_text("no traffic yet")
        expect(page.locator("#fallback-paths tbody")).to_contain_text("no fallbacks yet")
        expect(page.locator("#policy-version")).not_to_have_text("–")
        expect(page.locator("#panel-tenants tbody tr")).to_have_count(2)
        expect(page.locator("#panel-tenants tbody tr").first).to_contain_text("0%")

        client = anthropic.Anthropic(base_url=router.url, api_key=KEY_A, max_retries=0, timeout=20)
        for prompt in ("Hi! How are you today?", "Prove that there are infinitely many primes.", "Translate 'cat' to French."):
            client.messages.create(model="auto", max_tokens=8, messages=[{"role": "user", "content": prompt}])
        opus = json.loads(_get(router.admin_url + "/readyz"))["tiers"]["opus"]
        sim.faults({"kind": "rate_limit", "model": opus, "count": 1, "retry_after": 30})
        other = anthropic.Anthropic(base_url=router.url, api_key=KEY_B, max_retries=0, timeout=20)
        answer = other.messages.with_raw_response.create(model="opus", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
        assert answer.headers["x-router-attempts"].startswith(f"{opus}:429,")

        # Within a few refreshes the numbers move.
        expect(page.locator("#card-requests .value")).to_have_text("4")
        expect(page.locator("#card-auto .value")).to_have_text("3")
        expect(page.locator("#card-fallbacks .value")).to_have_text("1")
        expect(page.locator("#card-cooling .value")).to_have_text("1")
        expect(page.locator("#card-cooling .sub")).to_have_text(opus)
        expect(page.locator("#fallback-paths tbody tr")).to_have_count(1)
        expect(page.locator("#fallback-paths tbody")).to_contain_text("rate_limit")
        expect(page.locator("#cooldowns tbody")).to_contain_text(opus)
        expect(page.locator("#panel-rules tbody")).to_contain_text("default")
        expect(page.locator("#panel-auto svg rect").first).to_be_attached()
        expect(page.locator("#card-savings .value")).to_have_text(_dollars())
        expect(page.locator("#card-triage .sub")).to_contain_text("3 classified")
        team_a = page.locator("#panel-tenants tbody tr").first
        expect(team_a).to_contain_text("team-a")
        expect(team_a.locator(".pct")).not_to_have_text("0%")  # three requests' spend against a $0.01 budget
        expect(page.locator("#panel-tenants tbody tr").nth(1)).to_contain_text("none")  # team-b: no budget
        expect(page.locator("#banner")).to_be_hidden()
        page.screenshot(path=str(_artifacts() / "status-page.png"), full_page=True)
        assert watched.problems == []
    finally:
        watched.close()


def test_strings_are_shown_as_text_and_a_failed_fetch_shows_the_banner(browser, make_router):
    from playwright.sync_api import expect

    router = make_router()
    real = json.loads(_get(router.admin_url + "/v1/router/status"))
    hostile = "<img src=x onerror=\"window.__pwned=1\">"
    real["rules"] = [{"rule": hostile, "requests": 1, "errors": 0, "share": 1.0}]
    real["policy"]["version"] = "<b>v</b>"
    watched = Watched(browser)
    page = watched.page
    mode = {"fail": False}

    def answer(route: Any) -> None:
        if mode["fail"]:
            route.fulfill(status=503, content_type="application/json", body='{"type":"error"}')
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(real))

    try:
        page.route("**/v1/router/status", answer)
        page.goto(f"{router.admin_url}/dashboard?refresh={REFRESH_MS}")
        expect(page.locator("#panel-rules tbody td").first).to_have_text(hostile)
        expect(page.locator("#policy-version")).to_have_text("<b>v</b>")
        assert page.locator("#panel-rules img, header b").count() == 0
        assert page.evaluate("window.__pwned") is None
        mode["fail"] = True
        expect(page.locator("#banner")).to_be_visible()
        expect(page.locator("#banner")).to_contain_text("503")
        expect(page.locator("#status-pill")).to_have_text("unreachable")
        mode["fail"] = False
        expect(page.locator("#banner")).to_be_hidden()
        # The only problems: the 503s this test served on purpose (and Chromium's console line for each).
        assert watched.problems and all("503" in p for p in watched.problems), watched.problems
    finally:
        watched.close()


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def _dollars() -> Any:
    import re

    return re.compile(r"^-?\$\d")
