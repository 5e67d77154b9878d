"""The facts rules match on, read from one request: sizes, features used, headers, tenant, classification.

Owns turning a parsed request into ``router.policy.rules.Facts``. Cheap and pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from router.classify.features import segments
from router.classify.schema import Classification
from router.policy.rules import Facts
from router.view import ParsedRequest

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
    _, _, _, found, _ = segments(parsed.body)
    view = parsed.view
    return Facts(
        model=view.model,
        input_tokens=len(parsed.raw) // 4,  # about four bytes of JSON per token: an estimate, not a count
        max_tokens=view.max_tokens,
        tools=bool(view.tools),
        images=bool(found.get("images")),
        documents=bool(found.get("documents")),
        thinking=bool(found.get("thinking")),
        stream=view.stream,
        betas=tuple(betas),
        hint=hint,
        tenant=tenant,
        classification=classification,
    )
