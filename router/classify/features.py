"""Features of a whole Messages request for the local classifier: hashed words plus a few request facts.

Owns turning a request body into a sparse feature vector, identically for training and serving. The work
per request is bounded (text is sampled from the head and tail of long inputs) so a 20k-token request
costs about as much as a 2k-token one.

The conversation is one weighted bag of words: the last user turn at full weight, earlier turns and the
system prompt at ``CONTEXT_WEIGHT``. When the last user turn is a short follow-up ("yes, go ahead"), the
latest user turn that states a task (the *anchor*) counts at full weight too and supplies the opening-word
features, so the follow-up inherits its conversation's category and difficulty.

This runs on every request, so the per-word work stays in C: each segment is lowered and split into words
once (with bytes operations for ASCII text, which is nearly all of it), the words are hashed with
``map(zlib.crc32, ...)``, and the bag of hashes is counted, weighted and normalised with a handful of numpy
calls. ``FEATURE_VERSION`` names what is computed, not how: a trained model holds only while the output
for every body stays the same, which tests pin against golden values.
"""

from __future__ import annotations

import math
import re
import zlib
from array import array
from itertools import repeat
from typing import Any

import numpy as np

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
"""A word is a run of ASCII letters, digits and underscores in the lowered text; any other non-space
character is a word of its own. Words are hashed as their UTF-8 bytes."""
_CONSTRAINT_WORDS = frozenset(  # as bytes, like the words they are compared with
    word.encode()
    for word in "must should exactly least most without only each every ensure include format words step "
    "avoid limit don't not maximum minimum".split()
)
_ENUM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s")
_MATH = re.compile(r"\d\s?[-+*/=<>^]\s?\d")
# _TOKEN, _ENUM and _MATH define the features. ASCII text, nearly all of it, takes the equivalents below:
# bytes operations that are one C pass over the text, where the regex engine would try its pattern at
# every position (the difference is 3-10x on long text). Tests hold each pair equal. In a str pattern \s
# also matches the separators 0x1c-0x1f, which bytes.split() and a bytes \s do not, so they are spelt out.
_ASCII_SPACE = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
_ASCII_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\x1c\x1d\x1e\x1f", b"abcdefghijklmnopqrstuvwxyz    ")
"""Lowers the letters and makes the separators plain spaces, for bytes.split()."""
_WORD_OR_SPACE = b"abcdefghijklmnopqrstuvwxyz0123456789_" + _ASCII_SPACE
"""Deleting these leaves the characters that are words of their own."""
_DENSE_FOLD = bytes.maketrans(b"0123456789\t\x0b\x0c\r\x1c\x1d\x1e\x1f", b"0000000000" + b" " * 8)
"""Digits all read "0" and spaces other than the newline " ", for the two patterns below."""
_ASCII_MATH = re.compile(rb"0[ \n]?[-+*/=<>^][ \n]?0")
"""``_MATH`` on ``_DENSE_FOLD``-ed text: it starts with a literal, which the engine finds by a fast scan."""
_ASCII_ITEM = rb" *(?:0+[.)]|[-*])(?=[ \n])"
_ASCII_FIRST_ITEM = re.compile(_ASCII_ITEM)
_ASCII_NEXT_ITEM = re.compile(b"\n" + _ASCII_ITEM)
"""``_ENUM`` on ``_DENSE_FOLD``-ed text. It counts the lines whose first non-space characters are an item
marker followed by a space (its ``\\s*`` may run over blank lines, but only onto the marker the next line would
find). Counted line by line, every line start but the first is a literal newline, found by a fast scan. The
space after the marker is a lookahead because it may be the newline that starts the next line."""

# The symbol counts are taken on the UTF-8 bytes (an ASCII byte never occurs inside a multi-byte
# character): one bytes.translate deletes everything but the symbols, and the rest is counted on that.
_CODE_SYMBOLS = b"{};=<>[]()#"
_ASCII_MATH_SIGNS = b"$\\^"
_NOT_SYMBOLS = bytes(sorted(set(range(256)) - set(_CODE_SYMBOLS + _ASCII_MATH_SIGNS + b"?")))
_OTHER_MATH_SIGNS = ("∑", "∫", "√", "π", "≤", "≥", "≠")


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
    texts: list[str] = []
    users: list[int] = []  # where the user turns are in texts
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                if str(message.get("role", "")) == "user":
                    users.append(len(texts))
                texts.append(block_text(message.get("content"), facts))
    last_index = users[-1] if users else -1
    anchor_index = last_index
    if last_index >= 0 and len(texts[last_index].strip()) < FOLLOW_UP_CHARS:
        stated = (i for i in reversed(users[:-1]) if len(texts[i].strip()) >= FOLLOW_UP_CHARS)
        anchor_index = next(stated, last_index)
    last = texts[last_index] if last_index >= 0 else ""
    anchor = texts[anchor_index] if anchor_index != last_index else ""
    context += [text for i, text in enumerate(texts) if i != last_index and i != anchor_index]
    total = len(last) + len(anchor) + sum(map(len, context))
    facts["turns"] = float(len(texts))
    return last, anchor, context, facts, total


_OPENING_SEED = zlib.crc32(b"^opening")
OPENING_WORDS = 4
"""The first words of the last turn are hashed again as their own features: how a request opens ("write a
poem", "summarise this", "what is") names the task in every dataset, unlike the rest of its phrasing."""
_OPENING_CHARS = 200
"""The opening words are the first ``OPENING_WORDS`` words of the first 200 characters."""


def _tokens(text: str) -> list[bytes]:
    """The words of ``text`` (``_TOKEN`` on it lowered), as UTF-8 bytes."""
    if not text.isascii():
        return list(map(str.encode, _TOKEN.findall(text.lower())))
    # A space either side of each character that is a word of its own, then split on spaces: one C pass
    # per distinct such character, where a regex makes a step per word.
    data = text.encode().translate(_ASCII_FOLD)
    for single in set(data.translate(None, _WORD_OR_SPACE)):
        char = bytes((single,))
        data = data.replace(char, b" " + char + b" ")
    return data.split()


def _opening_words(text: str, words: list[bytes]) -> list[bytes]:
    """The first ``OPENING_WORDS`` words of ``text[:200]``; ``words`` are those of the whole text."""
    first = words[:OPENING_WORDS]
    if len(text) <= _OPENING_CHARS:
        return first
    head = text[:_OPENING_CHARS]
    if head.isascii():
        # An ASCII word is the lowered text at its place, and only spaces lie between words: found in
        # order, each where the last one ended, the whole text's first words are the head's if they fit.
        lowered = head.encode().translate(_ASCII_FOLD)
        end = 0
        for word in first:
            start = lowered.find(word, end)
            if start < 0:
                break
            end = start + len(word)
        else:
            return first
    return _tokens(head)[:OPENING_WORDS]


def _add_hashes(words: list[bytes], into: list[int], seed: int = 0) -> None:
    """Append the CRC-32 of each word, then of each adjacent pair "a b", starting from ``seed`` (not yet
    masked to ``HASH_BITS``). A bigram's hash is crc32("a b"), computed by continuing the running CRC of
    "a " through "b" -- built-in maps, no Python loop per token."""
    unigrams = list(map(zlib.crc32, words, repeat(seed))) if seed else list(map(zlib.crc32, words))
    into += unigrams
    into += map(zlib.crc32, words[1:], map(zlib.crc32, repeat(b" "), unigrams))


def _word_block(full: list[int], context: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(indices ascending, unit-length values) of the word features, from the hashes counted at full weight
    and those counted at ``CONTEXT_WEIGHT``.

    A term's raw weight is a sum of 1.0s and 0.5s, exact in floating point in any order, so it is counted
    here in units of ``CONTEXT_WEIGHT`` (1/2): each full-weight hash goes in twice. Sorting the masked
    hashes puts equal ones next to each other; the lengths of the runs are the counts."""
    if not full and not context:
        return np.zeros(0, dtype=np.uintc), np.zeros(0, dtype=np.float64)
    # CRC-32s are unsigned 32-bit: array('I') takes a list of them at C speed, twice numpy's fromiter.
    hashes = np.frombuffer(array("I", full), dtype=np.uintc)
    if context:
        hashes = np.concatenate((hashes, hashes, np.frombuffer(array("I", context), dtype=np.uintc)))
    n = hashes.size
    hashes &= N_HASHED - 1
    hashes.sort()
    # Run boundaries: where the sorted hash changes, plus both ends.
    edges = np.empty(n + 1, dtype=bool)
    edges[0] = edges[n] = True
    np.not_equal(hashes[1:], hashes[:-1], out=edges[1:n])
    bounds = edges.nonzero()[0]
    indices = hashes.take(bounds[:-1])
    counts = bounds[1:] - bounds[:-1]
    # Sublinear term weights, then unit length: long prompts do not drown short ones.
    if context:
        raw = counts * CONTEXT_WEIGHT
        values = np.log(raw)
        values += 1.0
        np.copyto(values, raw, where=raw < 1.0)
    else:
        values = np.log(counts)  # every count is at least 1 here
        values += 1.0
    values /= math.sqrt(np.dot(values, values))
    return indices, values


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


def _dense(task_chars: int, sample: str, words: list[bytes], facts: dict[str, float], total: int) -> list[float]:
    n = max(len(sample), 1)
    encoded = sample.encode()
    size = len(encoded)
    symbols = encoded.translate(None, _NOT_SYMBOLS)
    code_symbols = len(symbols) - len(symbols.translate(None, _CODE_SYMBOLS))
    questions = symbols.count(b"?")
    math_signs = len(symbols) - code_symbols - questions  # the rest are the ASCII math signs
    if size == len(sample):
        folded = encoded.translate(_DENSE_FOLD)
        math_signs += len(_ASCII_MATH.findall(folded))
        enumerations = len(_ASCII_NEXT_ITEM.findall(folded)) + (1 if _ASCII_FIRST_ITEM.match(folded) else 0)
    else:
        math_signs += len(_MATH.findall(sample)) + sum(map(sample.count, _OTHER_MATH_SIGNS))
        enumerations = len(_ENUM.findall(sample))
    constraints = sum(map(_CONSTRAINT_WORDS.__contains__, words))
    non_ascii = (size - len(sample)) / n  # extra UTF-8 bytes: a cheap non-ASCII share
    return [
        math.log1p(total) / 12.0,
        math.log1p(task_chars) / 12.0,
        _capped(math.log1p(facts.get("turns", 1.0)) / 3.0),
        _capped(sample.count("```") / 4.0),
        _capped(code_symbols / n * 10.0),
        _capped(math_signs / 10.0),
        _capped(questions / 5.0),
        _capped(constraints / 8.0),
        _capped(enumerations / 10.0),
        facts.get("tools", 0.0),
        facts.get("images", 0.0),
        facts.get("documents", 0.0),
        facts.get("thinking", 0.0),
        _capped(non_ascii * 4.0),
    ]


def _capped(value: float) -> float:
    return value if value < 1.0 else 1.0  # min(value, 1.0) without the builtin's argument handling


def featurize_parts(body: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The features of a request in the two blocks the serving path multiplies separately: the word
    features' indices (ascending, unsigned 32-bit) and values (``float64``), and every dense feature in
    ``DENSE_NAMES`` order, zeros included and not yet scaled by ``DENSE_WEIGHT``. ``featurize`` is these
    as one sparse vector."""
    last, anchor, context, facts, total = segments(body)
    task_chars = len(anchor or last)
    last, anchor = _bounded(last), _bounded(anchor)
    context = _context_sample(context)
    # Each segment is lowered and tokenised once; the opening words and the dense counts reuse its words.
    last_words, anchor_words = _tokens(last), _tokens(anchor)
    task, task_words = (anchor, anchor_words) if anchor else (last, last_words)
    full: list[int] = []
    _add_hashes(last_words, full)
    if anchor_words:
        _add_hashes(anchor_words, full)
    _add_hashes(_opening_words(task, task_words), full, _OPENING_SEED)
    halved: list[int] = []
    for text in context:
        _add_hashes(_tokens(text), halved)
    indices, values = _word_block(full, halved)
    sample = "\n".join(filter(None, (last, anchor, *context)))
    words = last_words + anchor_words if anchor_words else last_words
    return indices, values, _dense(task_chars, sample, words, facts, total)


def featurize(body: dict[str, Any]) -> tuple[list[int], list[float]]:
    """Sparse features of a request: (indices, values), indices ascending and unique."""
    indices, values, dense = featurize_parts(body)
    present = [offset for offset, value in enumerate(dense) if value]
    return (
        indices.tolist() + [N_HASHED + offset for offset in present],
        values.tolist() + [dense[offset] * DENSE_WEIGHT for offset in present],
    )


def prompt_body(text: str) -> dict[str, Any]:
    """A single-turn request body for a bare prompt (training rows, ``{"prompt": ...}`` input lines)."""
    return {"messages": [{"role": "user", "content": text}]}
