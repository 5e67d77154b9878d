"""Features of a whole Messages request for the local classifier: hashed words plus a few request facts.

Owns turning a request body into a sparse feature vector, identically for training and serving. The work
per request is bounded (text is sampled from the head and tail of long inputs) so a 20k-token request
costs about as much as a 2k-token one.

The conversation is one weighted bag of words: the last user turn at full weight, earlier turns and the
system prompt at ``CONTEXT_WEIGHT``. When the last user turn is a short follow-up ("yes, go ahead"), the
latest user turn that states a task (the *anchor*) counts at full weight too and supplies the opening-word
features, so the follow-up inherits its conversation's category and difficulty.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from itertools import chain, repeat
from typing import Any

FEATURE_VERSION = 1
HASH_BITS = 17
N_HASHED = 1 << HASH_BITS
DENSE_NAMES: tuple[str, ...] = (
    "log_total_chars",
    "log_last_turn_chars",
    "turns",
    "code_fences",
    "code_symbols",
    "math_notation",
    "questions",
    "constraints",
    "enumerations",
    "tools",
    "images",
    "documents",
    "thinking",
    "non_ascii",
)
N_FEATURES = N_HASHED + len(DENSE_NAMES)
CONTEXT_WEIGHT = 0.5
DENSE_WEIGHT = 0.35
"""Scale of the dense block relative to the unit-norm word block."""

# Bounded text per segment: head and tail of anything longer; context turns share one budget, newest first.
_HEAD, _TAIL = 2400, 800
_CONTEXT_BUDGET = 2400
_TOKEN = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")
_CONSTRAINT_WORDS = frozenset(
    "must should exactly least most without only each every ensure include format words step avoid limit "
    "don't not maximum minimum".split()
)
_ENUM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s")
_MATH = re.compile(r"\d\s?[-+*/=<>^]\s?\d")
_MATH_SIGNS = ("$", "\\", "^", "∑", "∫", "√", "π", "≤", "≥", "≠")
_CODE_SYMBOLS = tuple("{};=<>[]()#")


def _bounded(text: str) -> str:
    if len(text) <= _HEAD + _TAIL:
        return text
    return text[:_HEAD] + " " + text[-_TAIL:]


def block_text(content: Any, facts: dict[str, float]) -> str:
    """Text of a message ``content`` (a string or a list of blocks); notes images and documents in ``facts``."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "image":
            facts["images"] = 1.0
        elif kind == "document":
            facts["documents"] = 1.0
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "text":
                parts.append(str(source.get("data", "")))
        elif kind == "tool_result":
            parts.append(block_text(block.get("content"), facts))
        elif kind == "tool_use":
            parts.append(str(block.get("name", "")))
    return "\n".join(parts)


FOLLOW_UP_CHARS = 60
"""A last user turn shorter than this is a follow-up: the conversation's task is in an earlier turn."""


def segments(body: dict[str, Any]) -> tuple[str, str, list[str], dict[str, float], int]:
    """(last user turn, anchor turn, other context, request facts, total characters) of a request body.

    The anchor is the last user turn itself unless that is a short follow-up; then it is the latest
    earlier user turn at least ``FOLLOW_UP_CHARS`` long (or the follow-up when there is none)."""
    facts: dict[str, float] = {}
    if body.get("tools"):
        facts["tools"] = 1.0
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        facts["thinking"] = 1.0
    context: list[str] = []
    system = body.get("system")
    if system:
        context.append(block_text(system, facts))
    messages = body.get("messages")
    texts: list[tuple[str, str]] = []
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                texts.append((str(message.get("role", "")), block_text(message.get("content"), facts)))
    users = [i for i, (role, _) in enumerate(texts) if role == "user"]
    last_index = users[-1] if users else -1
    anchor_index = last_index
    if last_index >= 0 and len(texts[last_index][1].strip()) < FOLLOW_UP_CHARS:
        earlier = [i for i in users[:-1] if len(texts[i][1].strip()) >= FOLLOW_UP_CHARS]
        anchor_index = earlier[-1] if earlier else last_index
    last = texts[last_index][1] if last_index >= 0 else ""
    anchor = texts[anchor_index][1] if anchor_index != last_index else ""
    context.extend(text for i, (_, text) in enumerate(texts) if i not in (last_index, anchor_index))
    total = len(last) + len(anchor) + sum(len(text) for text in context)
    facts["turns"] = float(len(texts))
    return last, anchor, context, facts, total


_OPENING_SEED = zlib.crc32(b"^opening")
OPENING_WORDS = 4
"""The first words of the last turn are hashed again as their own features: how a request opens ("write a
poem", "summarise this", "what is") names the task in every dataset, unlike the rest of its phrasing."""


def _add_opening(text: str, acc: dict[int, float]) -> None:
    words = _TOKEN.findall(text[:200].lower())[:OPENING_WORDS]
    mask = N_HASHED - 1
    previous = ""
    for word in words:
        index = zlib.crc32(word.encode(), _OPENING_SEED) & mask
        acc[index] = acc.get(index, 0.0) + 1.0
        if previous:
            index = zlib.crc32((previous + " " + word).encode(), _OPENING_SEED) & mask
            acc[index] = acc.get(index, 0.0) + 1.0
        previous = word


def _add_words(text: str, weight: float, acc: dict[int, float]) -> list[str]:
    """Unigrams and bigrams, hashed with CRC-32; returns the words. A bigram's hash is crc32("a b"),
    computed by continuing the running CRC of "a " -- built-in maps, no Python loop per token."""
    words = _TOKEN.findall(text.lower())
    if not words:
        return words
    encoded = [word.encode() for word in words]
    unigrams = list(map(zlib.crc32, encoded))
    spaced = map(zlib.crc32, repeat(b" "), unigrams)
    bigrams = map(zlib.crc32, encoded[1:], spaced)
    counts = Counter(map((N_HASHED - 1).__and__, chain(unigrams, bigrams)))
    get = acc.get
    for index, count in counts.items():
        acc[index] = get(index, 0.0) + count * weight
    return words


def _context_sample(context: list[str]) -> list[str]:
    """The newest context first, each piece cut to what is left of the shared budget."""
    left = _CONTEXT_BUDGET
    sample: list[str] = []
    for text in reversed(context):
        if left <= 0:
            break
        piece = text if len(text) <= left else text[: left // 2] + " " + text[-(left // 2) :]
        sample.append(piece)
        left -= len(piece)
    return sample


def _dense(last_chars: int, sample: str, words: list[str], facts: dict[str, float], total: int) -> list[float]:
    n = max(len(sample), 1)
    code_symbols = sum(map(sample.count, _CODE_SYMBOLS))
    math_signs = sum(map(sample.count, _MATH_SIGNS)) + len(_MATH.findall(sample))
    constraints = sum(1 for word in words if word in _CONSTRAINT_WORDS)
    non_ascii = (len(sample.encode()) - len(sample)) / n  # extra UTF-8 bytes: a cheap non-ASCII share
    return [
        math.log1p(total) / 12.0,
        math.log1p(last_chars) / 12.0,
        min(math.log1p(facts.get("turns", 1.0)) / 3.0, 1.0),
        min(sample.count("```") / 4.0, 1.0),
        min(code_symbols / n * 10.0, 1.0),
        min(math_signs / 10.0, 1.0),
        min(sample.count("?") / 5.0, 1.0),
        min(constraints / 8.0, 1.0),
        min(len(_ENUM.findall(sample)) / 10.0, 1.0),
        facts.get("tools", 0.0),
        facts.get("images", 0.0),
        facts.get("documents", 0.0),
        facts.get("thinking", 0.0),
        min(non_ascii * 4.0, 1.0),
    ]


def featurize(body: dict[str, Any]) -> tuple[list[int], list[float]]:
    """Sparse features of a request: (indices, values), indices ascending and unique."""
    last, anchor, context, facts, total = segments(body)
    task_chars = len(anchor or last)
    last, anchor = _bounded(last), _bounded(anchor)
    context = _context_sample(context)
    acc: dict[int, float] = {}
    words = _add_words(last, 1.0, acc)
    words += _add_words(anchor, 1.0, acc)
    _add_opening(anchor or last, acc)
    for text in context:
        _add_words(text, CONTEXT_WEIGHT, acc)
    # Sublinear term weights, then unit length: long prompts do not drown short ones.
    for key, value in acc.items():
        acc[key] = 1.0 + math.log(value) if value >= 1.0 else value
    norm = math.sqrt(sum(v * v for v in acc.values())) or 1.0
    indices = sorted(acc)
    values = [acc[i] / norm for i in indices]
    sample = "\n".join(part for part in (last, anchor, *context) if part)
    dense = _dense(task_chars, sample, words, facts, total)
    for offset, value in enumerate(dense):
        if value:
            indices.append(N_HASHED + offset)
            values.append(value * DENSE_WEIGHT)
    return indices, values


def prompt_body(text: str) -> dict[str, Any]:
    """A single-turn request body for a bare prompt (training rows, ``{"prompt": ...}`` input lines)."""
    return {"messages": [{"role": "user", "content": text}]}
