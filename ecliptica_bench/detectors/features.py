"""The learned detectors' features, built from a JSON feature config (stored with the weights):

    {"blocks": [{"type": ..., "scale": s, ...}, ...]}   block types:
    embedding  the unit-normalised all-MiniLM-L6-v2 response embedding (the scorer's E)
    keyword    the keyword detector's hit (measures.paper.is_refusal / has_hedge), one 0/1 column
    prefixes   one 0/1 column per phrase: the lowercased, stripped text starts with it (XSTest's string-match style);
               with "any": true, one column: it starts with any of them
    hashing    sklearn HashingVectorizer (stateless: no fitted vocabulary) over the first head_chars characters,
               lowercased; its parameters are the block's (analyzer, ngram_range, n_features, norm, ...)
    length     log1p(word count) / 7

Each block is multiplied by its scale. The result is a scipy CSR matrix (n, dim) whose columns follow the
blocks in order; learned.py applies the linear model to it with numpy.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import scipy.sparse as sp

from ..measures import paper

MINILM = "all-MiniLM-L6-v2"
_LOCK = threading.Lock()
_MODEL: dict[str, object] = {}

HASHING_KEYS = ("analyzer", "ngram_range", "n_features", "norm", "alternate_sign", "binary", "lowercase")


def _normalise(text: str) -> str:
    return paper._normalise(text or "").strip()


def is_minilm(embedder) -> bool:
    """The embedder (an object with .id, e.g. scoring.embed.Embedder) is all-MiniLM-L6-v2."""
    return embedder is not None and str(getattr(embedder, "id", "")).startswith(MINILM)


def minilm_encode(texts: list[str]) -> np.ndarray:
    """Unit-normalised all-MiniLM-L6-v2 embeddings (the packaged model), for when the caller has none."""
    from ..models import embedder_path

    with _LOCK:
        if "m" not in _MODEL:
            from sentence_transformers import SentenceTransformer

            _MODEL["m"] = SentenceTransformer(embedder_path(None), device="cpu")
        model = _MODEL["m"]
    return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


def embeddings(texts: list[str], emb: np.ndarray | None, embedder=None) -> np.ndarray:
    """MiniLM embeddings of texts: the caller's `emb` unless they come from another embedder (the scorer may
    run a different one), then the embedder's own when it is MiniLM, else the packaged MiniLM."""
    if emb is not None and (embedder is None or is_minilm(embedder)):
        return np.asarray(emb, dtype=np.float64)
    if is_minilm(embedder):
        return np.asarray(embedder.encode(texts), dtype=np.float64)
    return minilm_encode(texts).astype(np.float64)


@functools.lru_cache(maxsize=8)
def _hasher(items: tuple):
    from sklearn.feature_extraction.text import HashingVectorizer

    kw = dict(items)
    kw["ngram_range"] = tuple(kw["ngram_range"])
    return HashingVectorizer(**kw, dtype=np.float64)


def hashing_params(block: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in block.items() if k in HASHING_KEYS))


def block_matrix(block: dict, texts: list[str], emb: np.ndarray | None, embedder=None):
    kind = block["type"]
    if kind == "embedding":
        return sp.csr_matrix(embeddings(texts, emb, embedder))
    if kind == "keyword":
        return sp.csr_matrix(
            paper.has_marker(texts, block["marker"], ignore_quoted=block.get("ignore_quoted", False)).astype(float)[:, None]
        )
    if kind == "prefixes":
        heads = [_normalise(t) for t in texts]
        phrases = block["phrases"]
        if block.get("any"):
            return sp.csr_matrix(np.array([h.startswith(tuple(phrases)) for h in heads], dtype=float)[:, None])
        return sp.csr_matrix(
            np.array([[h.startswith(p) for p in phrases] for h in heads], dtype=float).reshape(len(texts), len(phrases))
        )
    if kind == "hashing":
        heads = [_normalise(t)[: block["head_chars"]] for t in texts]
        return _hasher(hashing_params(block)).transform(heads).tocsr()
    if kind == "length":
        return sp.csr_matrix((np.log1p(paper.word_counts(texts)) / 7.0)[:, None])
    raise ValueError(f"unknown feature block type {kind!r}")


def block_dim(block: dict) -> int:
    return {
        "embedding": lambda b: int(b.get("dim", 384)),
        "keyword": lambda b: 1,
        "prefixes": lambda b: 1 if b.get("any") else len(b["phrases"]),
        "hashing": lambda b: int(b["n_features"]),
        "length": lambda b: 1,
    }[block["type"]](block)


def featurize(config: dict, texts: list[str], emb: np.ndarray | None = None, embedder=None) -> sp.csr_matrix:
    """(len(texts), sum of block dims) CSR matrix of the config's blocks, each times its scale."""
    mats = [block_matrix(b, texts, emb, embedder) * float(b.get("scale", 1.0)) for b in config["blocks"]]
    return sp.hstack(mats, format="csr")


def needs_embedding(config: dict) -> bool:
    return any(b["type"] == "embedding" for b in config["blocks"])
