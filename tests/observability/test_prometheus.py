"""The Prometheus alert rules and the Grafana dashboard, checked with the real tools.

``promtool`` validates and unit-tests ``deploy/prometheus/alerts.yml``; then a real ``prometheus`` scrapes a
real router that served simulated traffic (plain, streaming, ``auto`` requests with Haiku triage, injected
429/529/5xx, a broken stream, exhausted fallbacks, a rejected key), and every PromQL expression of the
dashboard and the alert rules is run against it. The expression rule (so that a renamed metric or label
breaks this test, not the dashboard at 3 a.m.):

1. Every expression parses: ``/api/v1/query`` answers ``status: success`` for it as written (Grafana's
   ``$__rate_interval`` and ``$__range`` replaced by ``1m`` and ``5m``).
2. Every metric name it references (``router_*``, plus ``up``, which Prometheus makes itself) is in the
   router's ``/metrics`` output and has series in Prometheus.
3. Every selector in it (metric name plus label matchers) matches series: a mistyped label name or value
   finds nothing. The only exceptions are listed in ``MAY_BE_EMPTY`` with the reason.
4. Dashboard expressions return data as written. Alert expressions are ``<signal> <op> <number>``, possibly
   joined by ``and``/``or``/``unless``: each signal, with its threshold comparison stripped, returns data
   (whether the threshold is crossed is for ``alerts_test.yml``, not for a short test run).

Skipped, with the reason, when ``prometheus`` or ``promtool`` is not on PATH (``.ci/install-prometheus``
installs Debian's package).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml

from router.policy.keys import hash_key
from tests.conftest import ROOT, sdk_client
from tests.servers import free_port

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "router.json"
MISSING = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{' and '.join(MISSING)} not on PATH (install with .ci/install-prometheus)"
)

GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "5m"}
PROMETHEUS_MADE = {"up"}  # series Prometheus writes itself, not the router
# Selectors allowed to match nothing in this test, each with why. Keep this short: every entry is a place
# where a typo would go unnoticed. Both are guarded by `or vector(0)` in the dashboard.
MAY_BE_EMPTY = {
    'router_tokens_total{type="cache_read"}': "the simulator reports no prompt-cache tokens",
    'router_tokens_total{type="cache_write"}': "the simulator reports no prompt-cache tokens",
}
TENANT_KEY = "sk-router-team-a-0123456789abcdef"
TENANTS = f"""
tenants:
  team-a:
    keys: ["{hash_key(TENANT_KEY)}"]
    budget: {{monthly_usd: 1000.0}}
"""
ALWAYS_HAIKU = "confidence_threshold: 1.0\n"  # every auto request asks Haiku
MESSAGES = [{"role": "user", "content": "Write a Python function that merges two sorted lists."}]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, check=False)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> list[str]:
        found = []
        for panel in panels:
            found += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
            found += walk(panel.get("panels", []))
        return found

    return walk(json.loads(DASHBOARD.read_text())["panels"])


# --- static checks ------------------------------------------------------------------------------------


def test_alert_rules_are_valid():
    result = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass():
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid():
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_and_unit_tests():
    runbook = (PROMETHEUS_DIR / "RUNBOOK.md").read_text()
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]}
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["annotations"].get("runbook"), f"{name} has no runbook annotation"
        assert f"#{name.lower()}" in rule["annotations"]["runbook"], f"{name}'s runbook does not link its section"
        assert re.search(rf"^## {name}\b", runbook, re.MULTILINE), f"RUNBOOK.md has no section for {name}"
        assert name in fired, f"alerts_test.yml never shows {name} firing"


def test_dashboard_shape():
    board = json.loads(DASHBOARD.read_text())
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            leftover = re.sub(r"\$__rate_interval|\$__range", "", target["expr"])
            assert "$" not in leftover, f"{panel['title']}: unknown variable in {target['expr']!r}"


# --- expression analysis ------------------------------------------------------------------------------

NAME = re.compile(r"(?<![\w\"'])([a-zA-Z_:][\w:]*)(\s*\{[^}]*\})?")
KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "vector", "scalar", "abs",
    "clamp_min", "clamp_max", "max_over_time", "min_over_time", "avg_over_time", "sum_over_time", "count_over_time",
    "label_replace", "label_join", "time", "timestamp", "absent", "round", "ceil", "floor", "inf", "nan", "e",
}


def substitute(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, selector text) for every vector selector in ``expr``."""
    # Drop string literals' contents outside braces, grouping label lists and range/duration brackets.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    found = []
    for match in NAME.finditer(text):
        name, braces = match.group(1), match.group(2) or ""
        if name in KEYWORDS or re.fullmatch(r"[\d.e+-]+", name):
            continue
        if text[match.end():].lstrip().startswith("(") and not braces:
            continue  # a function call we did not list
        found.append((name, name + braces.strip()))
    return found


def _split_top_level(expr: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        ch = expr[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == '"':
            i = expr.index('"', i + 1)
        elif depth == 0:
            word = re.match(r"\s(and|or|unless)\s", expr[i:])
            if word:
                parts.append(expr[start:i])
                i += word.end()
                start = i
                continue
        i += 1
    parts.append(expr[start:])
    return parts


def _unwrap(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, ch in enumerate(expr):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(expr) - 1:
                return expr  # the first paren closes early: "(a) / (b)"
        expr = expr[1:-1].strip()
    return expr


def signals(expr: str) -> list[str]:
    """An alert expression's signals: its ``and``/``or``/``unless`` operands without ``<op> <number>``."""
    parts = _split_top_level(_unwrap(expr))
    if len(parts) > 1:
        return [s for part in parts for s in signals(part)]
    stripped = re.sub(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?[\d.]+(e[+-]?\d+)?\s*$", "", parts[0].strip())
    return [_unwrap(stripped)]


def test_expression_analysis_finds_selectors_and_signals():
    expr = 'sum by (model) (rate(a_total{x="1"}[5m])) / sum by (model) (rate(a_total[5m])) > 0.2 and up{job="r"} == 0'
    assert selectors(expr) == [("a_total", 'a_total{x="1"}'), ("a_total", "a_total"), ("up", 'up{job="r"}')]
    assert signals(expr) == ['sum by (model) (rate(a_total{x="1"}[5m])) / sum by (model) (rate(a_total[5m]))', 'up{job="r"}']
    assert signals("(a / b > 0.25 and c > 0.02) or d > 0") == ["a / b", "c", "d"]
    assert signals("histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m]))) > 60") == [
        "histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))"
    ]


# --- a real Prometheus scraping a real router ---------------------------------------------------------


class Prometheus:
    def __init__(self, tmp: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: router\n    scrape_interval: 1s\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = open(tmp / "prometheus.log", "w")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(
            [
                "prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait(lambda: self._get("/-/ready") is not None, "prometheus ready", 20)

    def _get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                body = resp.read()
        except urllib.error.HTTPError as err:
            body = err.read()
        except OSError:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body

    def query(self, expr: str) -> dict[str, Any]:
        return self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr})) or {"status": "unreachable"}

    def _wait(self, check: Any, what: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, f"prometheus exited: {Path(self.log.name).read_text()[-2000:]}"
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def drive_traffic(router: Any, sim: Any) -> None:
    """Simulated traffic that exercises every metric: what each step produces is in its comment."""
    client = anthropic.Anthropic(base_url=router.url, api_key=TENANT_KEY, max_retries=0, timeout=20)

    def create(model: str, **kw: Any) -> None:
        try:
            client.messages.create(model=model, max_tokens=32, messages=MESSAGES, **kw)
        except anthropic.APIError:
            pass

    def stream(model: str) -> None:
        try:
            with client.messages.stream(model=model, max_tokens=32, messages=MESSAGES) as events:
                for _ in events:
                    pass
        except anthropic.APIError:
            pass

    for model in ("opus", "sonnet", "haiku", "auto", "claude-unlisted-1"):  # ok outcomes, rules, tokens, cost
        create(model)
    stream("sonnet")  # TTFT, stream="true"
    stream("auto")
    try:  # rejected: a key no tenant has
        sdk_client(router).messages.create(model="haiku", max_tokens=8, messages=MESSAGES)
    except anthropic.AuthenticationError:
        pass
    sim.faults({"kind": "rate_limit", "model": "claude-opus-4-8", "retry_after": 120, "count": 1})
    create("opus")  # 429 attempt, fallback opus -> sonnet (rate_limit), opus cooling down
    sim.faults({"kind": "overloaded", "model": "claude-sonnet-4-6", "count": 1})
    create("sonnet")  # 529 attempt, fallback (overloaded)
    sim.faults({"kind": "error_after_content", "model": "claude-sonnet-4-6", "count": 1})
    stream("sonnet")  # stream_error outcome
    sim.faults({"kind": "server_error", "model": "*"})
    create("haiku")  # every target 500: exhausted, upstream_error
    sim.faults({"kind": "overloaded", "model": "claude-haiku-4-5"})
    for _ in range(7):  # Haiku triage fails (error) until the breaker opens (breaker_open), stage fallback
        create("auto")
    sim.faults()


def test_every_dashboard_and_alert_expression_runs_on_a_real_prometheus(make_router, sim, tmp_path):
    started = time.monotonic()
    router = make_router(files={"tenants.yaml": TENANTS, "classifier.yaml": ALWAYS_HAIKU})
    prometheus = Prometheus(tmp_path, router.admin_url.removeprefix("http://"))  # /metrics: the admin listener
    try:
        drive_traffic(router, sim)
        with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
            exposed = {
                line.split("{")[0].split(" ")[0] for line in resp.read().decode().splitlines() if line and line[0] != "#"
            }

        dashboard = [substitute(e) for e in dashboard_exprs()]
        alerts = [substitute(r["expr"]) for r in alert_rules()]
        checks: dict[str, str] = {}  # query -> why it must return data
        for expr in dashboard:
            checks[expr] = "dashboard expression"
        for expr in alerts:
            for signal in signals(expr):
                checks[signal] = f"signal of alert expression {expr!r}"
        names: set[str] = set()
        for expr in dashboard + alerts:
            for name, selector in selectors(expr):
                names.add(name)
                if selector not in MAY_BE_EMPTY:
                    checks[selector] = f"selector in {expr!r}"
        for name in names:
            checks[f'{{__name__="{name}"}}'] = f"metric {name}"

        missing = sorted(n for n in names if n not in exposed and n not in PROMETHEUS_MADE)
        assert not missing, f"referenced but not in the router's /metrics: {missing}"

        def failures() -> dict[str, str]:
            bad = {}
            for expr in dashboard + alerts:
                answer = prometheus.query(expr)
                if answer.get("status") != "success":
                    bad[expr] = f"does not run: {answer.get('error', answer)}"
            for query, why in checks.items():
                if query in bad:
                    continue
                answer = prometheus.query(query)
                if answer.get("status") != "success":
                    bad[query] = f"does not run ({why}): {answer.get('error', answer)}"
                elif not answer["data"]["result"]:
                    bad[query] = f"no data ({why})"
            return bad

        # Scrapes run every second; rate() needs two samples after the traffic, so poll until all pass.
        bad = failures()
        while bad and time.monotonic() - started < 50:
            time.sleep(1)
            bad = failures()
        assert not bad, "\n".join(f"{q}\n    {why}" for q, why in bad.items())
        assert len(dashboard) >= 30 and len(alerts) >= 12
    finally:
        prometheus.stop()
