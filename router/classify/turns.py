"""What a request asks, apart from the harness it arrives in: the task view the difficulty model reads.

Owns splitting a Messages body into the *ask* (this turn's human text), the *anchor* (the earlier human turn
a short follow-up continues), the *context* (the rest of the conversation) and the *harness* (the system
prompt and the tool list an agent sends, unchanged, on every call).

Why: a coding agent such as Claude Code sends a system prompt of many thousand tokens and dozens of tool
schemas with every request. That text is the same whether the user asks "what does this function return?"
or "redesign this module's concurrency model". Weighed as content, it makes every agent call look long and
hard. So the harness never enters the difficulty features: it is recognised by shape (tools present, or a
system prompt longer than ``HARNESS_SYSTEM_CHARS``) and reduced to a fingerprint, which identifies it in
logs and tests but carries no weight. A short system prompt without tools ("You are a translator") is part
of the task and counts as context.

In an agent loop the latest user message often holds only tool results; the ask is then the latest user
message with text a person wrote. Harness reminders injected into user turns (``<system-reminder>``
blocks) are not the person's words and are dropped.

Pure: no I/O, no state, no logging (the text is the user's prompt).
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import msgspec

FOLLOW_UP_CHARS = 60
"""An ask shorter than this is a follow-up ("yes, go ahead"): its task is in an earlier human turn."""
HARNESS_SYSTEM_CHARS = 2000
"""A system prompt longer than this (or any system prompt sent with tools) is a harness, not the task."""
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


class TaskView(msgspec.Struct, frozen=True, kw_only=True):
    ask: str
    """This turn's human text."""
    anchor: str
    """The earlier human turn a short follow-up continues; empty when the ask states its own task."""
    context: tuple[str, ...]
    """Other turns (earlier user turns, assistant replies, tool results), oldest first; a short system
    prompt that is not a harness comes first."""
    user_turns: int
    """Human-text user turns in the conversation."""
    images: bool
    documents: bool
    thinking: bool
    harness: int
    """CRC-32 fingerprint of the harness (system prompt and tool names), 0 when there is none."""

    @property
    def task(self) -> str:
        """The text difficulty is judged from: the anchor (if any) and the ask."""
        return f"{self.anchor}\n{self.ask}" if self.anchor else self.ask


def _text_of(content: Any, flags: dict[str, bool], human: list[str], other: list[str]) -> None:
    """Sort the text of a message ``content`` into what a person wrote and everything else."""
    if isinstance(content, str):
        human.append(content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            human.append(str(block.get("text", "")))
        elif kind == "image":
            flags["images"] = True
        elif kind == "document":
            flags["documents"] = True
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "text":
                human.append(str(source.get("data", "")))
        elif kind == "tool_result":
            inner: list[str] = []
            _text_of(block.get("content"), flags, inner, other)
            other.extend(inner)


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict) and b.get("type") == "text")
    return ""


def fingerprint(system: str, tools: Any) -> int:
    """A harness's identity: the same system prompt and tool names give the same number on every call."""
    names = [str(t.get("name", "")) for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    return zlib.crc32("\x00".join([system, *names]).encode("utf-8", "replace")) or 1


def task_view(body: dict[str, Any]) -> TaskView:
    """The task view of a request body. Lenient: any field may be missing or odd."""
    flags = {"images": False, "documents": False}
    system = _system_text(body.get("system"))
    tools = body.get("tools")
    is_harness = bool(tools) or len(system) > HARNESS_SYSTEM_CHARS
    harness = fingerprint(system, tools) if is_harness else 0
    turns: list[tuple[bool, str, str]] = []  # (is user, human text, other text)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            human: list[str] = []
            other: list[str] = []
            _text_of(message.get("content"), flags, human, other)
            text = "\n".join(human)
            if "<system-reminder>" in text:
                text = _REMINDER.sub("", text)
            turns.append((message.get("role") == "user", text.strip(), "\n".join(other)))
    asks = [i for i, (user, text, _) in enumerate(turns) if user and text]
    ask_at = asks[-1] if asks else -1
    anchor_at = -1
    if ask_at >= 0 and len(turns[ask_at][1]) < FOLLOW_UP_CHARS:
        anchor_at = next((i for i in reversed(asks[:-1]) if len(turns[i][1]) >= FOLLOW_UP_CHARS), -1)
    context: list[str] = [system] if system and not is_harness else []
    for i, (_, text, other) in enumerate(turns):
        if i not in (ask_at, anchor_at) and text:
            context.append(text)
        if other:
            context.append(other)
    thinking = body.get("thinking")
    return TaskView(
        ask=turns[ask_at][1] if ask_at >= 0 else "",
        anchor=turns[anchor_at][1] if anchor_at >= 0 else "",
        context=tuple(context),
        user_turns=len(asks),
        images=flags["images"],
        documents=flags["documents"],
        thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        harness=harness,
    )
