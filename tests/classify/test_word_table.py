"""The distilled MiniLM token table shipped in models/ and the word table built from it: loaded without
pickle, and a text's mean word vector is the static model's own mean over the text's tokens."""

from __future__ import annotations

import json
import zlib
import numpy as np
import pytest

from router.classify import embedding
from router.classify.embedding import WordTable, build_table, default_static_path, static_tokens, vocabulary_from_tokenizer

STATIC = default_static_path()
pytestmark = pytest.mark.skipif(not STATIC.exists(), reason="models/minilm-l6-static.npz not present")

TEXTS = [
    "please write a short poem about the sea",
    "solve the equation and prove the result",
    "what is the capital of france",
    "refactor this function to remove the global state",
]


def test_static_table_loads_without_pickle_and_matches_its_tokenizer():
    with np.load(STATIC, allow_pickle=False) as arrays:
        assert set(arrays.files) == {"token_vectors", "tokenizer_json"}
        vectors = arrays["token_vectors"]
        assert vectors.dtype == np.float16 and vectors.ndim == 2
        assert arrays["tokenizer_json"].dtype == np.uint8
    tokenizer, table, provenance = static_tokens()
    assert tokenizer.get_vocab_size() == table.shape[0] == vectors.shape[0]
    assert "Apache-2.0" in provenance["licence"] and len(provenance["weights_sha256"]) == 64
    sidecar = json.loads(STATIC.with_suffix(".json").read_text())
    assert sidecar["pca_dims"] == table.shape[1]


def test_mean_word_vector_is_the_static_models_token_mean():
    """With every direction kept, the table is a rotation of the token space: cosines between texts' table
    vectors equal cosines between the static model's mean token vectors of the same texts."""
    tokenizer, table, _ = static_tokens()
    words = sorted({w for text in TEXTS for w in text.split()})
    arrays, provenance = build_table(words, dims=table.shape[1], source="minilm")
    assert provenance["table"] == "minilm"
    words_table = WordTable(arrays["vocab_hashes"], arrays["vocab_tokens"], arrays["vocab_vectors"])

    def table_vector(text: str) -> np.ndarray:
        hashes = np.array([zlib.crc32(w.encode()) for w in text.split()], dtype=np.uint32)
        return words_table.mean_vector(hashes)

    def token_vector(text: str) -> np.ndarray:
        mean = table[tokenizer.encode(text, add_special_tokens=False).ids].mean(axis=0)
        return mean / np.linalg.norm(mean)

    ours = np.array([table_vector(t) for t in TEXTS])
    theirs = np.array([token_vector(t) for t in TEXTS])
    assert np.allclose(ours @ ours.T, theirs @ theirs.T, atol=2e-3)  # float16 storage of the table
    assert not np.allclose(theirs @ theirs.T, np.eye(len(TEXTS)), atol=0.05)  # the texts do differ


def test_vocabulary_of_either_tokenizer_kind():
    assert vocabulary_from_tokenizer(["\u2581Hello", "ing", "\u2581x_1", "\u2581"]) == {"hello", "x_1"}
    assert vocabulary_from_tokenizer(["hello", "##ing", "[CLS]", "Über", "x_1"], wordpiece=True) == {"hello", "x_1"}


def test_unknown_table_source_is_refused(monkeypatch):
    monkeypatch.setenv(embedding.SOURCE_ENV, "glove")
    with pytest.raises(ValueError, match="ROUTER_WORD_TABLE"):
        embedding.source_from_env()
    monkeypatch.delenv(embedding.SOURCE_ENV)
    assert embedding.source_from_env() == embedding.DEFAULT_SOURCE

