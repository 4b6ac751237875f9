"""Detectors of refusal and hedging with measured error rates (issue 23).

    from ecliptica_bench import detectors
    det = detectors.get("refusal")            # the best available: the learned detector when its weights ship
    det = detectors.get("refusal", "keyword") # the paper-compatible keyword detector
    det.name, det.predict(texts, emb=None), det.labels(texts, emb=None), det.validation, det.error_counts

`emb`: the scorer's unit-normalised all-MiniLM-L6-v2 response embeddings, row-aligned with `texts`; the
learned detectors reuse them and embed with MiniLM themselves when none are given (or when `embedder`, an
object with .id and .encode, is not MiniLM). Other specs (an HF sequence-classification id or folder) go
through the factories in SPECS: SPECS["hf"] = callable(kind, spec, embedder) -> Detector.

Layout: base.py (interface, agreement figures, manifest), keyword.py, learned.py (numpy inference from
JSON weights), features.py (the learned detectors' features), train.py + build.py + sources.py (rebuilding
the weights: `ecliptica build-detectors`).
"""

from __future__ import annotations

from typing import Callable

from ..errors import EclipticaError
from .base import LABELS, POSITIVE, Detector, binary_figures, check_kind, figures, manifest
from .keyword import KeywordDetector

KINDS = tuple(LABELS)

# spec family -> factory(kind, spec, embedder) for specs that are neither "keyword" nor "learned"
# (e.g. an HF sequence-classification model id or folder)
SPECS: dict[str, Callable[..., Detector]] = {}


def _hf(kind: str, spec: str, embedder=None) -> Detector:
    from .hf import hf_detector  # transformers and torch load only when a user names a model

    return hf_detector(kind, spec, embedder)


SPECS["hf"] = _hf


def learned_available(kind: str) -> bool:
    from .learned import weights_path

    return weights_path(kind).exists()


def get(kind: str, spec: str | None = None, embedder=None) -> Detector:
    """The detector of `kind` named by spec: None (the best available: learned when its weights ship, else
    keyword), "keyword", "learned", or anything a SPECS factory accepts (tried in order; the "hf"
    factory takes a model id or folder)."""
    check_kind(kind)
    if spec is None:
        spec = "learned" if learned_available(kind) else "keyword"
    if spec == "keyword":
        return KeywordDetector(kind)
    if spec == "learned":
        from .learned import LearnedDetector

        return LearnedDetector.load(kind, embedder=embedder)
    family, _, rest = spec.partition(":")
    if family in SPECS and rest:
        return SPECS[family](kind, rest, embedder)
    if "hf" in SPECS:
        return SPECS["hf"](kind, spec, embedder)
    raise EclipticaError(f"detector {kind}={spec}: unknown spec (use keyword, learned, or an HF model id/folder)")


__all__ = [
    "KINDS",
    "LABELS",
    "POSITIVE",
    "SPECS",
    "Detector",
    "KeywordDetector",
    "binary_figures",
    "figures",
    "get",
    "learned_available",
    "manifest",
]
