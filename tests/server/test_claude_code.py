"""Claude Code pointed at the router: its request shapes, sent with the real anthropic SDK over HTTP, are
priced (in metrics and in the access log line), fall back within their tier's chain on a 429, and with the
``claude-code`` example policy a conversation stays on the model that answered it.

The shapes are written here by hand after what Claude Code sends: the beta Messages endpoint, a large
system prompt in cached blocks, its tool list, ``metadata.user_id``, streaming for the main loop and a
small non-streaming call on the dated Haiku id for background work.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import pytest

from router.policy.loader import load_policy
from tests.conftest import POLICIES, sdk_client

CLAUDE_CODE = POLICIES / "examples" / "claude-code"
BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"]
HEADERS = {"x-app": "cli", "user-agent": "claude-cli/2.1.0 (external, cli)"}
SECRET_PROMPT = "refactor-the-ledger-module-7731"

_GUIDE = (
    "You are an interactive CLI tool that helps users with software engineering tasks. Use the instructions "
    "below and the tools available to you to assist the user. Keep answers short; prefer editing existing "
    "files; never commit unless asked; run the project's tests after a change; read a file before editing it. "
)
SYSTEM = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": _GUIDE * 60, "cache_control": {"type": "ephemeral"}},  # ~20 KB, like the real one
]


def _tool(name: str, summary: str, **properties: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": summary,
        "input_schema": {
            "type": "object",
            "properties": {key: {"type": kind} for key, kind in properties.items()},
            "required": list(properties),
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


TOOLS = [
    _tool("Task", "Launch a subagent for a multi-step task", description="string", prompt="string", subagent_type="string"),
    _tool("Bash", "Run a shell command", command="string", timeout="number"),
    _tool("Glob", "Find files by pattern", pattern="string"),
    _tool("Grep", "Search file contents", pattern="string", path="string"),
    _tool("Read", "Read a file", file_path="string", offset="number", limit="number"),
    _tool("Edit", "Replace a string in a file", file_path="string", old_string="string", new_string="string"),
    _tool("Write", "Write a file", file_path="string", content="string"),
    _tool("TodoWrite", "Update the todo list", todos="array"),
    _tool("WebFetch", "Fetch a URL", url="string", prompt="string"),
]


def main_loop(model: str, turns: int = 1) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>The todo list is empty.</system-reminder>"},
                {"type": "text", "text": f"Please {SECRET_PROMPT} and run the tests", "cache_control": {"type": "ephemeral"}},
            ],
        }
    ]
    for turn in range(1, turns):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"Step {turn} done."}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": "Continue."}]})
    return {
        "model": model,
        "max_tokens": 32000,
        "system": SYSTEM,
        "tools": TOOLS,
        "messages": messages,
        "metadata": {"user_id": "user_0f3a_account_9c1d_session_5e2b"},
    }


def background_call(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 512,
        "system": [{"type": "text", "text": "Summarize this coding conversation in under 50 characters as a title."}],
        "messages": [{"role": "user", "content": f"Please {SECRET_PROMPT} and run the tests"}],
        "metadata": {"user_id": "user_0f3a_account_9c1d_session_5e2b"},
    }


def send(router: Any, body: dict[str, Any], stream: bool) -> tuple[str, dict[str, str]]:
    """One Claude Code-style request through the SDK's beta Messages API; (answering model, headers)."""
    client = sdk_client(router).beta.messages
    if stream:
        with client.stream(**body, betas=BETAS, extra_headers=HEADERS) as events:
            message = events.get_final_message()
            headers = dict(events.response.headers)
    else:
        raw = client.with_raw_response.create(**body, betas=BETAS, extra_headers=HEADERS)
        message, headers = raw.parse(), dict(raw.headers)
    assert message.content, "an answer came back"
    return message.model, {k.lower(): v for k, v in headers.items()}


def scrape(router: Any) -> dict[str, float]:
    with urllib.request.urlopen(router.admin_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def serving_cost(metrics: dict[str, float], model: str) -> float:
    """The cost counted for ``model``: under its own id, or under its catalogue entry (a dated snapshot may
    be labelled by the entry it names -- either way a value from the policy)."""
    found = load_policy(POLICIES).tiers.catalogue.resolve(model)
    names = {model, found.entry if found is not None else model}
    return sum(metrics.get(f'router_cost_usd_total{{model="{name}",purpose="serving"}}', 0.0) for name in names)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "router.access"]


# (requested id, streamed like the main loop, the tier it belongs to, the model its tier falls back to)
SHAPES = [
    ("claude-sonnet-5", True, "sonnet", "claude-opus-4-8"),
    ("claude-haiku-4-5-20251001", False, "haiku", "claude-sonnet-4-6"),
    ("claude-opus-4-8", True, "opus", "claude-sonnet-4-6"),
]


@pytest.mark.parametrize(("model", "stream", "tier", "fallback"), SHAPES, ids=[s[0] for s in SHAPES])
def test_claude_code_requests_are_priced_and_fall_back_on_429(make_router, sim, caplog, model, stream, tier, fallback):
    caplog.set_level(logging.INFO, logger="router.access")
    router = make_router()
    body = main_loop(model) if stream else background_call(model)

    answered, headers = send(router, body, stream)
    assert answered == model and headers["x-router-tier"] == tier
    metrics = scrape(router)
    assert serving_cost(metrics, model) > 0
    (line,) = access_lines(caplog)
    assert line["requested"] == model and line["tier"] == tier and line["usd"] > 0

    sim.faults({"kind": "rate_limit", "model": model, "count": 1, "retry_after": 30})
    answered, headers = send(router, body, stream)
    assert answered == fallback, headers.get("x-router-attempts")
    assert headers["x-router-attempts"].startswith(f"{model}:429")
    assert sim.models_seen()[-2:] == [model, fallback]
    metrics = scrape(router)
    assert serving_cost(metrics, fallback) > 0
    fell_back = access_lines(caplog)[-1]
    assert fell_back["model"] == fallback and fell_back["usd"] > 0
    assert all(SECRET_PROMPT not in r.getMessage() for r in caplog.records)


def test_claude_code_policy_keeps_a_conversation_on_the_model_that_answered(make_router, sim):
    files = {name: (CLAUDE_CODE / name).read_text() for name in ("tiers.yaml", "rules.yaml")}
    router = make_router(files=files)
    sim.faults({"kind": "rate_limit", "model": "claude-sonnet-5", "count": 1, "retry_after": 30})
    first, headers = send(router, main_loop("claude-sonnet-5"), True)
    assert first == "claude-opus-4-8" and headers["x-router-rule"] == "default"
    # The next turns of the same conversation: Sonnet is usable again, but the cache lives on Opus now.
    for turns in (2, 3):
        answered, headers = send(router, main_loop("claude-sonnet-5", turns), True)
        assert answered == "claude-opus-4-8", headers
    # Claude Code's background call on its Haiku id stays on Haiku, exactly as named.
    answered, headers = send(router, background_call("claude-haiku-4-5-20251001"), False)
    assert answered == "claude-haiku-4-5-20251001" and headers["x-router-rule"] == "haiku-class"
    assert sim.models_seen() == ["claude-sonnet-5", "claude-opus-4-8", "claude-opus-4-8", "claude-opus-4-8", "claude-haiku-4-5-20251001"]
