"""labeled_natural_v2: natural user requests with a category and a 1-10 difficulty, and how they split.

Owns reading ``labeled_natural_v2/natural_v2.jsonl`` into request bodies (multi-turn rows as user /
assistant / user ..., the assistant replies left empty because they were not kept), the licence rule
(AlpacaEval is CC BY-NC: never trained on by a model that ships) and the two evaluation splits:
- the held-out split: a seeded 20% of every source, stratified by difficulty, whole conversations together
  (an Arena follow-up never lands on the other side of its first turn);
- leave-one-source-out groups (an Arena conversation's first turns and follow-ups are one source).
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

NATURAL_V2 = Path("labeled_natural_v2") / "natural_v2.jsonl"
EVAL_ONLY_SOURCES = frozenset({"alpaca_eval"})
"""CC BY-NC 4.0: evaluation only for a model that ships (DATA.md)."""
HELD_OUT_SHARE = 0.2
SPLIT_SEED = 12


class NaturalRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source: str
    conversation: str
    """Rows of one conversation share this (an Arena follow-up and its first turn)."""
    body: dict[str, Any]
    text: str
    category: str
    difficulty: float
    """1-10, RUBRIC_v2."""
    context_missing: bool = False
    """A Dolly row whose passage is not included: its text is shorter than the real request would be."""

    @property
    def family(self) -> str:
        """The source for leave-one-source-out: Arena first turns and follow-ups are one."""
        return "chatbot_arena" if self.source.startswith("chatbot_arena") else self.source


def _conversation(row_id: str) -> str:
    # "arena_mt:1000:1" is a later turn of the conversation whose first turn is "arena:1000".
    if row_id.startswith("arena_mt:"):
        return "arena:" + row_id.split(":")[1]
    return row_id


def load_natural(data_dir: Path) -> list[NaturalRow]:
    rows = []
    with (Path(data_dir) / NATURAL_V2).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            raw = json.loads(line)
            messages: list[dict[str, Any]] = []
            for turn in raw.get("earlier_user_turns") or []:
                messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": ""}]
            messages.append({"role": "user", "content": raw["text"]})
            rows.append(
                NaturalRow(
                    id=raw["id"],
                    source=raw["source"],
                    conversation=_conversation(raw["id"]),
                    body={"messages": messages},
                    text=raw["text"],
                    category=raw["category"],
                    difficulty=float(raw["difficulty"]),
                    context_missing=bool(raw.get("context_missing")),
                )
            )
    return rows


def natural_hash(data_dir: Path) -> str:
    return hashlib.sha256((Path(data_dir) / NATURAL_V2).read_bytes()).hexdigest()


def held_out_ids(rows: Sequence[NaturalRow], share: float = HELD_OUT_SHARE, seed: int = SPLIT_SEED) -> set[str]:
    """Ids of the held-out split: ``share`` of each (source family, difficulty band), by conversation."""
    by_conversation: dict[str, list[NaturalRow]] = collections.defaultdict(list)
    for row in rows:
        by_conversation[row.conversation].append(row)
    strata: dict[tuple[str, int], list[str]] = collections.defaultdict(list)
    for conversation, members in by_conversation.items():
        first = members[0]
        strata[(first.family, int(min(first.difficulty, 6)))].append(conversation)
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for key in sorted(strata):
        conversations = sorted(strata[key])
        rng.shuffle(conversations)
        held.update(conversations[: int(round(len(conversations) * share))])
    return {row.id for row in rows if row.conversation in held}


def split(rows: Sequence[NaturalRow]) -> tuple[list[NaturalRow], list[NaturalRow]]:
    """(rows the shipped model may train on, held-out rows). AlpacaEval rows are never trainable; the
    held-out part of them is evaluated like every other source."""
    held = held_out_ids(rows)
    train = [r for r in rows if r.id not in held and r.source not in EVAL_ONLY_SOURCES]
    return train, [r for r in rows if r.id in held]


def families(rows: Sequence[NaturalRow]) -> list[str]:
    """Sources for leave-one-source-out: every trainable family."""
    return sorted({r.family for r in rows if r.source not in EVAL_ONLY_SOURCES})
