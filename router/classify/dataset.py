"""The labelled prompts in ``../shared/data``: which rows exist, which may be trained on, how they split.

Owns reading the combined table and the licence and split rules. The mapping from datasets to labels is
the combined table's (``combined/build_combined.py``); the choices here are which rows the shipped model
may learn from and which are held out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
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
    body: dict | None = None
    """The whole request, for rows recorded from traffic; benchmark rows are a bare prompt (``text``)."""

    def request(self) -> dict:
        """The request body features are computed from."""
        return self.body if self.body is not None else {"messages": [{"role": "user", "content": self.text}]}

    @property
    def natural(self) -> bool:
        """Real user traffic: the natural prompt sets and requests recorded by the learning sink."""
        return self.source in NATURAL_SOURCES or self.source == "haiku_labelled"

    @property
    def trainable(self) -> bool:
        """May the shipped model learn from this row: licence allows it and it is not held out."""
        return self.split == "train" and self.source not in NON_COMMERCIAL_SOURCES


# Answer-format scaffolding of benchmark sets: it tells which dataset a row came from, not what task it is,
# and real user prompts rarely carry it. Stripped from training text only.
_SCAFFOLD = re.compile(
    r"(?im)^\s*(?:\(?[A-J]\)|[A-J][.)]:?)\s.*$"  # option lines: "A) ...", "(B) ...", "C. ..."
    r"|^\s*options:\s*$"
    r"|print only a single choice.*$"
    r"|^\s*answer:\s*$"
)


def clean_text(source: str, text: str) -> str:
    # PromptTensor rows carry a literal placeholder where a passage would be; a model would learn the
    # placeholder itself as the sign of summarisation or rewriting, so it is dropped.
    if source == "prompttensor":
        text = text.replace(_PLACEHOLDER, "")
    cleaned = _SCAFFOLD.sub("", text).strip()
    return cleaned or text.strip()


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
    """Rows recorded by the Haiku learning sink: JSON lines with ``body`` (a request) or ``text`` (a prompt),
    plus Haiku's ``category`` and ``complexity``."""
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
                    text=str(raw.get("text", "")),
                    category=raw["category"],
                    tier=raw["complexity"],
                    tier_conf="medium",
                    difficulty=float(raw.get("difficulty", 0.0)),
                    split="train",
                    body=raw.get("body"),
                )
            )
    return rows
