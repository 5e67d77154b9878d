"""A static word-embedding table distilled offline from WordLlama, looked up with the feature hashes.

Owns building the table (training time only: it reads the weights and tokenizer that ship inside the
``wordllama`` wheel, never ``WordLlama.load()``, which would try a hub download) and the serving-time lookup.

Why a word table rather than the tokenizer: running a BPE tokenizer on every request costs more than the
whole latency budget (about 0.07 ms for 50 words, 0.33 ms for 200). WordLlama's sentence vector is the mean
of its token vectors, and a word's tokens do not depend on its neighbours, so the mean over a text equals
the sum over its words of (sum of that word's token vectors) divided by the sum of their token counts. The
table stores, per vocabulary word, that sum and count, keyed by the word's CRC-32 (the same hash the word
features compute anyway), projected once onto the top principal directions of the vocabulary (64 of 256:
the cross-source numbers were as good, at a quarter of the size). Words outside the vocabulary add nothing.

Pure lookups; ``build_table`` is the only function that reads files, and only from the installed package.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import zlib
from collections.abc import Iterable

import numpy as np

WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
DIMS = 64
LICENCE = (
    "wordllama 0.4.0.post1 (MIT code); its l2_supercat token embeddings derive from Llama 2's token "
    "embeddings (Llama 2 Community License). The artifact ships a 64-d projection of them per word."
)
_WORD = re.compile(r"[a-z0-9_]+")


def vocabulary_from_tokenizer(vocab: Iterable[str]) -> set[str]:
    """The whole-word tokens of a SentencePiece vocabulary ("▁word"), lowered, as feature words."""
    words = set()
    for token in vocab:
        if token.startswith("\u2581") and len(token) > 1:
            word = token[1:].lower()
            if _WORD.fullmatch(word):
                words.add(word)
    return words


def build_table(words: Iterable[str], dims: int = DIMS) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, provenance) of the word table for ``words`` plus every whole-word token of the vocabulary.

    Arrays: ``vocab_hashes`` (uint32, ascending), ``vocab_tokens`` (token count per word) and
    ``vocab_vectors`` (per word, the sum of its token vectors projected to ``dims`` directions)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    package = importlib.resources.files("wordllama")
    tokenizer_json = (package / TOKENIZER).read_text(encoding="utf-8")
    weights_path = package / WEIGHTS
    tokenizer = Tokenizer.from_str(tokenizer_json)
    table = load_file(str(weights_path))["embedding.weight"].astype(np.float64)
    vocab = sorted(set(words) | vocabulary_from_tokenizer(tokenizer.get_vocab()))
    encodings = tokenizer.encode_batch(vocab, add_special_tokens=False)
    sums = np.zeros((len(vocab), table.shape[1]))
    counts = np.zeros(len(vocab))
    for row, encoding in enumerate(encodings):
        sums[row] = table[encoding.ids].sum(axis=0)
        counts[row] = len(encoding.ids)
    # Principal directions of the words' mean vectors: a label-free choice, made once for the table.
    means = sums / np.maximum(counts, 1.0)[:, None]
    centred = means - means.mean(axis=0)
    # Eigenvectors of the 256 x 256 covariance, largest first (the SVD's right vectors, far cheaper).
    values, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, np.argsort(values)[::-1][:dims]]
    projected = sums @ top
    hashes = np.array([zlib.crc32(word.encode()) for word in vocab], dtype=np.uint32)
    order = np.argsort(hashes, kind="stable")
    hashes, counts, projected = hashes[order], counts[order], projected[order]
    keep = np.ones(hashes.size, dtype=bool)
    keep[1:] = hashes[1:] != hashes[:-1]  # a CRC-32 collision: the first word keeps the slot
    provenance = {
        "source": "wordllama l2_supercat_256 (from the installed wheel)",
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        "licence": LICENCE,
    }
    arrays = {
        "vocab_hashes": hashes[keep],
        "vocab_tokens": counts[keep].astype(np.float32),
        "vocab_vectors": projected[keep].astype(np.float16),
    }
    return arrays, provenance


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
