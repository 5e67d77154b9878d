"""The facts rules match on, read from one request: sizes, features used, headers, tenant, classification.

Owns turning a parsed request into ``router.policy.rules.Facts``. Cheap and pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from typing import Any

from router.classify.schema import Classification
from router.policy.rules import Facts
from router.gateway.view import ParsedRequest

HINT_HEADER = "x-router-policy"


def request_facts(
    parsed: ParsedRequest,
    headers: Iterable[tuple[str, str]],
    tenant: str | None,
    classification: Classification | None,
) -> Facts:
    betas: list[str] = []
    hint: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == "anthropic-beta":
            betas.extend(flag.strip() for flag in value.split(",") if flag.strip())
        elif lowered == HINT_HEADER:
            hint = value.strip()
    body = parsed.messages_body  # a foreign dialect's body, read as Messages (images, documents, thinking)
    images, documents = _attachments(body.get("system"), False, False)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                images, documents = _attachments(message.get("content"), images, documents)
    thinking = body.get("thinking")
    view = parsed.view
    return Facts(
        model=view.model,
        input_tokens=parsed.estimated_tokens,
        max_tokens=view.max_tokens,
        tools=bool(view.tools),
        images=images,
        documents=documents,
        thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        stream=view.stream,
        betas=tuple(betas),
        hint=hint,
        tenant=tenant,
        classification=classification,
    )


def _attachments(content: Any, images: bool, documents: bool) -> tuple[bool, bool]:
    """Whether ``content`` (a string or a list of blocks, tool results included) holds images or documents.
    A walk over block types only: no text is copied (the classifier's ``segments`` does that for ``auto``)."""
    if not isinstance(content, list):
        return images, documents
    for block in content:
        if isinstance(block, dict):
            kind = block.get("type")
            if kind == "image":
                images = True
            elif kind == "document":
                documents = True
            elif kind == "tool_result":
                images, documents = _attachments(block.get("content"), images, documents)
    return images, documents
