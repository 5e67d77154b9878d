"""Features of the v2 difficulty model: hashed words and request structure from the task view, plus the
hashes of the task's words for the embedding table.

Owns turning a request body into, identically for training and serving:
- a unit-length block of hashed words and word pairs: the ask and the anchor at full weight, the rest of
  the conversation at ``CONTEXT_WEIGHT``, the opening words again as their own features (the v1 scheme,
  ``features``); never the harness (``turns``);
- ``DENSE_NAMES``: lengths of the task and of the conversation, structure counts (code, math, questions,
  constraints, lists) and a piecewise-linear length curve, all taken from the task, not the harness;
- the CRC-32 of each task word, which ``embedding.WordTable`` turns into the task's mean word vector.

Work per request is bounded: the task and the context are cut to a head and tail sample like v1's.
``FEATURE_VERSION`` names what is computed; a model trained on one version refuses another.
"""

from __future__ import annotations

import math
import zlib
from array import array
from itertools import repeat
from typing import Any

import msgspec
import numpy as np

from router.classify import features as v1
from router.classify.turns import TaskView, task_view

FEATURE_VERSION = 2
N_HASHED = v1.N_HASHED
_LENGTH_KNOTS = tuple(math.log1p(chars) for chars in (20, 50, 100, 200, 400, 800, 1600, 3200))
DENSE_NAMES: tuple[str, ...] = (
    "log_context_chars",
    "log_task_chars",
    "user_turns",
    "code_fences",
    "code_symbols",
    "math_notation",
    "questions",
    "constraints",
    "enumerations",
    "unused_tools",  # v1's slot for tools: always 0 here, the harness carries no weight
    "images",
    "documents",
    "thinking",
    "non_ascii",
    "log_task_words",
    "follow_up",
    *(f"length_over_{round(math.expm1(k))}" for k in _LENGTH_KNOTS),
)
N_DENSE = len(DENSE_NAMES)


class Signals(msgspec.Struct, frozen=True, kw_only=True):
    indices: np.ndarray
    """Hashed-word feature indices, ascending and unique (unsigned 32-bit)."""
    values: np.ndarray
    """Their values (float64), unit length."""
    dense: list[float]
    """``DENSE_NAMES`` in order."""
    word_hashes: np.ndarray
    """CRC-32 of every word of the task (bounded sample), repeats kept: the embedding table's keys."""


def _hashes(words: list[bytes], into: list[int]) -> list[int]:
    """v1's unigram and bigram hashes of ``words`` appended to ``into``; returns the unigrams."""
    unigrams = list(map(zlib.crc32, words))
    into += unigrams
    into += map(zlib.crc32, words[1:], map(zlib.crc32, repeat(b" "), unigrams))
    return unigrams


def signals_of_view(view: TaskView) -> Signals:
    ask, anchor = v1._bounded(view.ask), v1._bounded(view.anchor)
    context = v1._context_sample(list(view.context))
    ask_words, anchor_words = v1._tokens(ask), v1._tokens(anchor)
    task, task_words = (anchor, anchor_words) if anchor else (ask, ask_words)
    full: list[int] = []
    unigrams = _hashes(ask_words, full)
    if anchor_words:
        unigrams += _hashes(anchor_words, full)
    v1._add_hashes(v1._opening_words(task, task_words), full, v1._OPENING_SEED)
    halved: list[int] = []
    for text in context:
        v1._add_hashes(v1._tokens(text), halved)
    indices, values = v1._word_block(full, halved)
    task_chars = len(view.ask) + len(view.anchor)
    context_chars = sum(map(len, view.context))
    facts = {"turns": float(view.user_turns)}
    if view.images:
        facts["images"] = 1.0
    if view.documents:
        facts["documents"] = 1.0
    if view.thinking:
        facts["thinking"] = 1.0
    sample = f"{anchor}\n{ask}" if anchor else ask
    words = ask_words + anchor_words if anchor_words else ask_words
    dense = v1._dense(task_chars, sample, words, facts, context_chars)
    log_task = math.log1p(task_chars)
    dense.append(math.log1p(len(words)) / 10.0)
    dense.append(1.0 if anchor else 0.0)
    dense.extend((log_task - knot) / 3.0 if log_task > knot else 0.0 for knot in _LENGTH_KNOTS)
    word_hashes = np.frombuffer(array("I", unigrams), dtype=np.uint32) if unigrams else np.zeros(0, np.uint32)
    return Signals(indices=indices, values=values, dense=dense, word_hashes=word_hashes)


def signals(body: dict[str, Any]) -> Signals:
    """The features of a request body."""
    return signals_of_view(task_view(body))
