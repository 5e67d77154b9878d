"""A bounded text view of a Messages request body, for the Haiku classifier to read.

Owns what Haiku sees: a header of sizes and flags (turns, characters, approximate tokens, tool names,
images/documents, max_tokens, thinking), the system prompt, the first user turn and the last few turns,
with explicit markers wherever text was left out. The classifier pays per input token and must answer
within a tight deadline, so the view never exceeds its character budget however large the request is.

Pure and deterministic (same body, same text): no I/O, no logging (the text is the user's prompt).
Lenient about shapes: the router forwards bodies it did not validate, so any field may be missing or odd.
"""

from __future__ import annotations

from typing import Any

TAIL_TURNS = 4
"""Turns kept from the end: the latest request and the context it answers ("yes, do it" needs its plan)."""
_SYSTEM_SHARE = 0.25
"""The system prompt is context, not the task: it may take at most this share of the text budget."""
_TOOL_NAMES_MAX = 400
_CHARS_PER_TOKEN = 4


def condense(body: dict[str, Any], budget_chars: int = 6000) -> str:
    """The request as at most ``budget_chars`` characters of plain text."""
    if budget_chars < 1:
        raise ValueError("budget_chars must be positive")
    messages = [m for m in _as_list(body.get("messages")) if isinstance(m, dict)]
    rendered = [(_role(m), _render_content(m.get("content"))) for m in messages]
    system = _render_content(body.get("system"))
    header = _header(body, messages, rendered, system)

    keep = _kept_indices(rendered)
    omitted = [i for i in range(len(rendered)) if i not in keep]
    labels = {i: f"[turn {i + 1} {rendered[i][0]}]\n" for i in keep}
    gap = _gap_marker(len(omitted), sum(len(rendered[i][1]) for i in omitted)) if omitted else ""

    fixed = len(header) + len(gap) + sum(len(label) + 1 for label in labels.values())
    if system:
        fixed += len("[system]\n") + 1
    room = max(0, budget_chars - fixed)
    texts = {i: rendered[i][1] for i in keep}
    if system:
        texts[-1] = system
    caps = {key: (int(room * _SYSTEM_SHARE) if key == -1 else room) for key in texts}
    shares = _water_fill({key: len(text) for key, text in texts.items()}, caps, room)

    parts = [header]
    if system:
        parts.append("[system]\n" + _clip(system, shares[-1]) + "\n")
    for position, index in enumerate(keep):
        # The gap sits where the omitted turns were: after the first turn, before the tail.
        if gap and position == 1:
            parts.append(gap)
        parts.append(labels[index] + _clip(texts[index], shares[index]) + "\n")
    if gap and len(keep) <= 1:
        parts.append(gap)
    # The sizing above is exact for normal budgets; a tiny budget cannot fit even the labels.
    return "".join(parts)[:budget_chars]


def _kept_indices(rendered: list[tuple[str, str]]) -> list[int]:
    first_user = next((i for i, (role, _) in enumerate(rendered) if role == "user"), None)
    tail = list(range(max(0, len(rendered) - TAIL_TURNS), len(rendered)))
    if first_user is None or first_user in tail:
        return tail
    return [first_user, *tail]


def _gap_marker(turns: int, chars: int) -> str:
    return f"[… {turns} earlier turns, {chars} chars omitted …]\n"


def _header(body: dict[str, Any], messages: list[dict[str, Any]], rendered: list[tuple[str, str]], system: str) -> str:
    total_chars = len(system) + sum(len(text) for _, text in rendered)
    blocks = [b for m in messages for b in _blocks(m.get("content"))]
    blocks += _blocks(body.get("system"))
    thinking = body.get("thinking")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    max_tokens = body.get("max_tokens")
    fields = {
        "turns": len(messages),
        "chars": total_chars,
        "approx_tokens": total_chars // _CHARS_PER_TOKEN,
        "max_tokens": max_tokens if isinstance(max_tokens, int) else "unset",
        "thinking": _yes_no(thinking_on),
        "images": _yes_no(_has_type(blocks, "image")),
        "documents": _yes_no(_has_type(blocks, "document")),
    }
    lines = ["[request] " + " ".join(f"{key}={value}" for key, value in fields.items()) + "\n"]
    names = [t["name"] for t in _as_list(body.get("tools")) if isinstance(t, dict) and isinstance(t.get("name"), str)]
    if names:
        lines.append(_clip_names(names))
    return "".join(lines)


def _clip_names(names: list[str]) -> str:
    """Tool names say what kind of agent is asking; a hundred of them say no more than twenty."""
    shown: list[str] = []
    used = 0
    for name in names:
        piece = name[:60]
        if used + len(piece) + 2 > _TOOL_NAMES_MAX:
            break
        shown.append(piece)
        used += len(piece) + 2
    more = f" (+{len(names) - len(shown)} more)" if len(shown) < len(names) else ""
    return f"[tools] {len(names)}: {', '.join(shown)}{more}\n"


def _has_type(blocks: list[dict[str, Any]], kind: str) -> bool:
    for block in blocks:
        if block.get("type") == kind:
            return True
        # Images and documents also arrive inside tool results (screenshots, fetched files).
        if block.get("type") == "tool_result" and _has_type(_blocks(block.get("content")), kind):
            return True
    return False


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in _as_list(content) if isinstance(b, dict)]


def _role(message: dict[str, Any]) -> str:
    role = message.get("role")
    return role if role in ("user", "assistant") else "other"


def _render_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(filter(None, (_render_block(b) for b in _blocks(content))))


def _render_block(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "tool_use":
        return f"[tool_use {_short(block.get('name'))}]"
    if kind == "tool_result":
        inner = _render_content(block.get("content"))
        flag = " error" if block.get("is_error") is True else ""
        return f"[tool_result{flag}]" + (f"\n{inner}" if inner else "")
    if kind == "document":
        title = block.get("title")
        return f"[document{' ' + _short(title) if isinstance(title, str) else ''}]"
    if kind in ("thinking", "redacted_thinking"):
        # Earlier reasoning is long and says little about what the user asks next.
        return "[thinking omitted]"
    return f"[{_short(kind)}]"


def _short(value: Any) -> str:
    return value[:60] if isinstance(value, str) else "?"


def _clip(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: its beginning and end around an omission marker."""
    if len(text) <= limit:
        return text
    # Sized with the longest count the marker could carry, so the real one always fits.
    room = limit - len(_omission(len(text)))
    if room < 2:
        return text[:limit]
    # The question is often at the end of a pasted document, so the end keeps a third.
    head, tail = room - room // 3, room // 3
    return text[:head] + _omission(len(text) - head - tail) + text[len(text) - tail :]


def _omission(chars: int) -> str:
    return f"\n[… {chars} chars omitted …]\n"


def _water_fill(wants: dict[int, int], caps: dict[int, int], room: int) -> dict[int, int]:
    """Split ``room`` characters fairly: short texts take what they need, long ones share the rest."""
    shares = {key: 0 for key in wants}
    pending = sorted(wants, key=lambda key: (min(wants[key], caps[key]), key))
    left = room
    while pending:
        fair = left // len(pending)
        key = pending.pop(0)
        shares[key] = min(wants[key], caps[key], fair)
        left -= shares[key]
    return shares
