"""The labelled prompts in ``../shared/data``: which rows exist, which may be trained on, how they split.

Owns reading the combined table and the licence and split rules. The mapping from datasets to labels is
the combined table's (``combined/build_combined.py``); the choices here are which rows the shipped model
may learn from and which are held out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import msgspec

COMBINED = Path("combined") / "router_prompts_v0.jsonl.gz"
NATURAL_SOURCES = frozenset({"alpaca_eval", "arena_hard_v01"})
# Non-commercial licences: evaluation only for a model that ships (DATA.md).
NON_COMMERCIAL_SOURCES = frozenset({"alpaca_eval"})
_PLACEHOLDER = "<TEXT>"


class Row(msgspec.Struct, frozen=True):
    id: str
    source: str
    text: str
    category: str
    tier: str
    tier_conf: str
    difficulty: float
    split: str
    """``train``, ``test`` or ``eval_only`` (never trained on)."""

    @property
    def natural(self) -> bool:
        return self.source in NATURAL_SOURCES

    @property
    def trainable(self) -> bool:
        """May the shipped model learn from this row: licence allows it and it is not held out."""
        return self.split == "train" and self.source not in NON_COMMERCIAL_SOURCES


def clean_text(source: str, text: str) -> str:
    # PromptTensor rows carry a literal placeholder where a passage would be; a model would learn the
    # placeholder itself as the sign of summarisation or rewriting, so it is dropped.
    if source == "prompttensor":
        return text.replace(_PLACEHOLDER, "").strip()
    return text


def load_rows(data_dir: Path) -> list[Row]:
    path = Path(data_dir) / COMBINED
    rows: list[Row] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            rows.append(
                Row(
                    id=raw["id"],
                    source=raw["source"],
                    text=clean_text(raw["source"], raw["text"]),
                    category=raw["category"],
                    tier=raw["tier"],
                    tier_conf=raw.get("tier_conf") or "low",
                    difficulty=float(raw.get("difficulty_score") or 0.0),
                    split=raw.get("split_hint") or "train",
                )
            )
    return rows


def data_hash(data_dir: Path) -> str:
    """SHA-256 of the combined table's bytes: which data a model was trained from."""
    digest = hashlib.sha256()
    with (Path(data_dir) / COMBINED).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_extra(path: Path) -> list[Row]:
    """Rows recorded by the Haiku learning sink (JSON lines with ``text``, ``category``, ``complexity``)."""
    rows: list[Row] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            raw = json.loads(line)
            rows.append(
                Row(
                    id=f"extra:{number}",
                    source="haiku_labelled",
                    text=raw["text"],
                    category=raw["category"],
                    tier=raw["complexity"],
                    tier_conf="medium",
                    difficulty=float(raw.get("difficulty", 0.0)),
                    split="train",
                )
            )
    return rows
