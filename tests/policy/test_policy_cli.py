"""``router policy check | test | explain | diff | hash-key`` as ops run them."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from router.policy.keys import hash_key
from tests.conftest import POLICIES, ROOT
from tests.classify.test_classifier_commands import run_router

CASES = """cases:
  - name: high math goes to opus
    request: {model: auto, max_tokens: 100, messages: [{role: user, content: "Prove it"}]}
    classification: {category: math, complexity: high}
    expect: {tier: opus, rule: hard-reasoning}
  - name: named tier is honoured
    request: {model: haiku, max_tokens: 10, messages: [{role: user, content: "hi"}]}
    expect: {tier: haiku, rule: default, model: claude-haiku-4-5}
"""

BROKEN_EXPECTATION = """cases:
  - name: medium code expected on opus
    request: {model: auto, max_tokens: 100, messages: [{role: user, content: "Write a parser"}]}
    classification: {category: code, complexity: medium}
    expect: {tier: opus}
"""


def policy_copy(tmp_path: Path, cases: str | None = None) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("tests", "examples"))
    if cases is not None:
        (target / "tests").mkdir()
        (target / "tests" / "cases.yaml").write_text(cases)
    return target


def test_check_ok_and_check_errors_with_file_line(tmp_path):
    good = policy_copy(tmp_path)
    result = run_router("policy", "check", str(good))
    assert result.returncode == 0 and "ok:" in result.stdout and "version" in result.stdout
    (good / "rules.yaml").write_text("rules:\n  - name: a\n    when: {categroy: [code]}\n    then: {tier: opus}\n")
    result = run_router("policy", "check", str(good))
    assert result.returncode == 2
    assert "rules.yaml:3:" in result.stderr and "categroy" in result.stderr and "hint:" in result.stderr


def test_shipped_policies_pass_their_own_tests():
    if not (POLICIES / "tests").exists():
        pytest.skip("no shipped policy tests yet")
    result = run_router("policy", "test", str(POLICIES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout


def test_policy_test_passes_and_fails_with_a_readable_diff(tmp_path):
    passing = policy_copy(tmp_path / "a", CASES)
    result = run_router("policy", "test", str(passing))
    assert result.returncode == 0, result.stdout
    assert "PASS high math goes to opus" in result.stdout and "2 passed, 0 failed" in result.stdout

    failing = policy_copy(tmp_path / "b", BROKEN_EXPECTATION)
    result = run_router("policy", "test", str(failing))
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL medium code expected on opus" in out
    assert "tier: expected 'opus', got 'sonnet'" in out
    assert "decided by rule 'default' at " in out and "rules.yaml:" in out
    assert "hard-reasoning (complexity medium not in ['high'])" in out
    assert "0 passed, 1 failed" in out


def test_explain_prints_rule_origin_and_chain(tmp_path):
    request = tmp_path / "req.json"
    request.write_text(json.dumps({"model": "opus", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
    result = run_router("policy", "explain", str(POLICIES), "--request", str(request))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rule"]["name"] == "default" and "rules.yaml:" in report["rule"]["origin"]
    assert [t["tier"] for t in report["targets"]] == ["opus", "sonnet", "haiku"]
    assert {item["rule"] for item in report["not_matched"]} >= {"long-context", "hard-reasoning"}


def test_diff_counts_tier_changes_and_projects_cost(tmp_path):
    old = policy_copy(tmp_path / "old")
    new = policy_copy(tmp_path / "new")
    (new / "rules.yaml").write_text("rules:\n  - name: all-haiku\n    then: {tier: haiku}\n")
    replay = tmp_path / "requests.jsonl"
    bodies = [
        {"model": "opus", "max_tokens": 100, "messages": [{"role": "user", "content": "design a database"}]},
        {"model": "haiku", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]},
        {"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "summarise this"}]},
    ]
    replay.write_text("\n".join(json.dumps(b) for b in bodies))
    result = run_router("policy", "diff", str(old), str(new), "--replay", str(replay))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["requests"] == 3 and report["changed"] == 2
    assert report["transitions"] == {"opus -> haiku": 1, "sonnet -> haiku": 1}
    assert report["cost_new_usd"] < report["cost_old_usd"]


def test_hash_key_reads_stdin():
    key = "sk-router-some-team-0123456789"
    result = run_router("policy", "hash-key", stdin=key + "\n")
    assert result.returncode == 0 and result.stdout.strip() == hash_key(key)
    assert run_router("policy", "hash-key", stdin="short\n").returncode == 2


def _diff_setup(tmp_path, lines):
    old = policy_copy(tmp_path / "old")
    new = policy_copy(tmp_path / "new")
    (new / "rules.yaml").write_text("rules:\n  - name: all-haiku\n    then: {tier: haiku}\n")
    replay = tmp_path / "requests.jsonl"
    replay.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return old, new, replay


def test_diff_lists_changed_requests_with_limit(tmp_path):
    lines = [
        {"model": "opus", "max_tokens": 100, "messages": [{"role": "user", "content": "design a database"}]},
        {"model": "haiku", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]},
        {"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "summarise this"}]},
        {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "prove it"}]},
    ]
    old, new, replay = _diff_setup(tmp_path, lines)
    result = run_router("policy", "diff", str(old), str(new), "--replay", str(replay))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(c["index"], c["old"], c["new"]) for c in report["changes"]] == [(0, "opus", "haiku"), (2, "sonnet", "haiku"), (3, "opus", "haiku")]
    assert all(c["cost_delta_usd"] < 0 for c in report["changes"]) and report["changes_not_shown"] == 0
    limited = json.loads(run_router("policy", "diff", str(old), str(new), "--replay", str(replay), "--limit", "1").stdout)
    assert [c["index"] for c in limited["changes"]] == [0] and limited["changes_not_shown"] == 2
    assert limited["changed"] == 3 and "▏" not in result.stderr and "replaying" not in result.stderr  # no bar off a TTY


def test_diff_accepts_prompt_lines_like_classify(tmp_path):
    lines = [
        {"prompt": "Prove that the square root of two is irrational, step by step."},
        {"prompt": "hi"},
        {"model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "summarise this"}]},
    ]
    old, new, replay = _diff_setup(tmp_path, lines)
    result = run_router("policy", "diff", str(old), str(new), "--replay", str(replay))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["requests"] == 3
    assert all(c["new"] == "haiku" and c["old"] in ("sonnet", "opus", "haiku") for c in report["changes"])
    assert 2 in [c["index"] for c in report["changes"]] and report["cost_old_usd"] > 0
    (replay).write_text('{"prompt": "ok"}\nnot json\n')
    bad = run_router("policy", "diff", str(old), str(new), "--replay", str(replay))
    assert bad.returncode == 2 and f"{replay}:2: not JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_diff_shows_a_progress_bar_when_stderr_is_a_terminal(tmp_path):
    lines = [{"prompt": f"question {n}"} for n in range(30)]
    old, new, replay = _diff_setup(tmp_path, lines)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a width
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "policy", "diff", str(old), str(new), "--replay", str(replay)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, env={k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")},
    )
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    stdout, _ = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 0, seen.decode(errors="replace")
    assert json.loads(stdout)["requests"] == 30
    text = seen.decode(errors="replace")
    assert "replaying" in text and "0/30" in text and "req/s" in text, text


def test_a_cooldown_cap_that_is_not_positive_is_refused_with_file_and_line(tmp_path):
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    tiers = policies / "tiers.yaml"
    text = tiers.read_text()
    assert "max_cooldown_seconds: 300" in text
    tiers.write_text(text.replace("max_cooldown_seconds: 300", "max_cooldown_seconds: 0"))
    result = subprocess.run([sys.executable, "-m", "router", "policy", "check", str(policies)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if l.startswith("max_cooldown_seconds"))
    assert result.returncode != 0 and f"tiers.yaml:{line}:" in (result.stdout + result.stderr)
