"""``request_facts`` reads attachments and thinking with a walk over block types; the classifier's
``segments`` reads the same facts while it collects text. The two must agree on every shape of body."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from router.classify.features import segments
from router.gateway.facts import request_facts
from router.gateway.view import parse_request

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"}}
DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a contract"}}
TEXT = {"type": "text", "text": "hello"}

BODIES: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "plain"}]},
    {"messages": [{"role": "user", "content": [TEXT, IMAGE]}]},
    {"messages": [{"role": "user", "content": [DOCUMENT]}]},
    {"system": [TEXT, IMAGE], "messages": [{"role": "user", "content": "x"}]},
    {"system": "a system prompt", "messages": [{"role": "user", "content": [TEXT]}]},
    {"messages": [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [IMAGE]}]},
    ]},
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [DOCUMENT, TEXT]}]}]},
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "text only"}]}]},
    {"messages": [{"role": "user", "content": "think"}], "thinking": {"type": "enabled", "budget_tokens": 2048}},
    {"messages": [{"role": "user", "content": "think"}], "thinking": {"type": "adaptive"}},
    {"messages": [{"role": "user", "content": "think"}], "thinking": {"type": "disabled"}},
    {"messages": [{"role": "user", "content": "odd"}], "thinking": "enabled"},
    {"messages": [{"role": "user", "content": ["not a block", 3, IMAGE]}]},
    {"messages": ["not a message", {"role": "user", "content": 7}]},
    {"messages": [{"role": "user"}], "system": 12},
]


@pytest.mark.parametrize("index", range(len(BODIES)))
def test_request_facts_agree_with_the_classifier_segments(index: int) -> None:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, **BODIES[index]}
    parsed = parse_request(msgspec.json.encode(body))
    facts = request_facts(parsed, [], None, None)
    _, _, _, found, _ = segments(parsed.body)
    assert (facts.images, facts.documents, facts.thinking) == (
        bool(found.get("images")), bool(found.get("documents")), bool(found.get("thinking"))
    )


def test_the_cases_cover_each_fact_both_ways() -> None:
    seen = set()
    for body in BODIES:
        facts = request_facts(parse_request(msgspec.json.encode({"model": "m", **body})), [], None, None)
        seen |= {("images", facts.images), ("documents", facts.documents), ("thinking", facts.thinking)}
    assert len(seen) == 6
