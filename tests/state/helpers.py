"""Shared helpers for the state tests: a tenants.yaml with one budgeted/limited tenant, concurrent SDK calls,
the tenant's spend read back from /metrics."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic

from router.policy.keys import hash_key

KEY = "sk-router-state-tenant-0123456789ab"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def tenants_yaml(extra: str) -> str:
    return f"""
tenants:
  team-a:
    keys: ["{hash_key(KEY)}"]
{extra}
"""


def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=30)


def call(url: str, *, stream: bool, model: str = "opus", max_tokens: int = 64) -> str:
    """One request; returns ``ok``, ``429`` or the exception's class name."""
    try:
        c = client(url)
        if stream:
            with c.messages.stream(model=model, max_tokens=max_tokens, messages=MESSAGES) as s:
                s.get_final_message()
        else:
            c.messages.create(model=model, max_tokens=max_tokens, messages=MESSAGES)
        return "ok"
    except anthropic.RateLimitError:
        return "429"
    except Exception as exc:  # noqa: BLE001 -- the test counts every other failure
        return type(exc).__name__


def concurrent(jobs: list[Any], workers: int = 40) -> list[str]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return resp.read().decode()


def metric(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` whose label set contains ``labels`` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.eE+-]+)$", line)
        if match and labels in (match.group(1) or ""):
            total += float(match.group(2))
    return total
