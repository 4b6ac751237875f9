"""The detector interface every kind shares, the binary agreement figures, and the shipped manifest.

A detector maps response texts to labels of its kind (refusal: full_refusal | partial_refusal |
full_compliance; hedging: hedged | confident) and to a boolean (the kind's positive labels). Its
`validation` holds the figures measured on external held-out sets when the weights were built (stored in
weights/manifest.json; the data are not in the repository): per set n, tp, fn, tn, fp, accuracy, kappa,
sensitivity, specificity, precision and, where the set has source models, per_model {model: same figures}.
`error_counts` is the pooled held-out confusion (tp, fn, tn, fp) of the set the manifest names "pooled",
the counts an error correction (Rogan-Gladen) uses.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.io import read_json
from ..errors import EclipticaError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"

# the labels of each kind, and which of them count as positive (predict() == True)
LABELS: dict[str, tuple[str, ...]] = {
    "refusal": ("full_compliance", "full_refusal", "partial_refusal"),
    "hedging": ("confident", "hedged"),
}
POSITIVE: dict[str, frozenset[str]] = {
    "refusal": frozenset({"full_refusal", "partial_refusal"}),
    "hedging": frozenset({"hedged"}),
}
NEGATIVE: dict[str, str] = {"refusal": "full_compliance", "hedging": "confident"}


def check_kind(kind: str) -> str:
    if kind not in LABELS:
        raise EclipticaError(f"detector kind {kind!r}: unknown (known: {', '.join(LABELS)})")
    return kind


def binary_counts(gold: Sequence[bool], pred: Sequence[bool]) -> tuple[int, int, int, int]:
    """(tp, fn, tn, fp) of boolean predictions against boolean gold."""
    g, p = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    if g.shape != p.shape:
        raise ValueError(f"gold and predictions differ in length ({len(g)} vs {len(p)})")
    return int((g & p).sum()), int((g & ~p).sum()), int((~g & ~p).sum()), int((~g & p).sum())


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def figures(tp: int, fn: int, tn: int, fp: int) -> dict:
    """n, the counts, accuracy, Cohen's kappa (None when undefined: both raters use one class only),
    sensitivity (recall), specificity and precision of a binary confusion table."""
    n = tp + fn + tn + fp
    out = {"n": n, "tp": tp, "fn": fn, "tn": tn, "fp": fp}
    acc = _ratio(tp + tn, n)
    kappa = None
    if n:
        pe = ((tp + fn) * (tp + fp) + (tn + fp) * (tn + fn)) / (n * n)
        kappa = (acc - pe) / (1 - pe) if pe < 1 else None
    out.update(
        accuracy=acc,
        kappa=kappa,
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        precision=_ratio(tp, tp + fp),
    )
    return out


def binary_figures(gold: Sequence[bool], pred: Sequence[bool], groups: Sequence[str] | None = None) -> dict:
    """figures() of predictions against gold; with groups (e.g. the source model per row), also per_model."""
    out = figures(*binary_counts(gold, pred))
    if groups is not None:
        g, p, m = np.asarray(gold, bool), np.asarray(pred, bool), np.asarray(groups)
        out["per_model"] = {str(k): figures(*binary_counts(g[m == k], p[m == k])) for k in dict.fromkeys(m.tolist())}
    return out


@functools.lru_cache(maxsize=4)
def _manifest_at(path: str, mtime_ns: int) -> dict:
    data = read_json(Path(path), hint="rebuild it with `ecliptica build-detectors`")
    if not isinstance(data, dict) or not isinstance(data.get("detectors"), dict):
        raise EclipticaError(f"{path}: no 'detectors' mapping; rebuild it with `ecliptica build-detectors`")
    return data


def manifest(path: Path | None = None) -> dict:
    """The shipped training manifest (weights/manifest.json), or {"detectors": {}} when none is shipped yet."""
    path = Path(path or MANIFEST)
    if not path.exists():
        return {"detectors": {}, "sources": {}}
    return _manifest_at(str(path), path.stat().st_mtime_ns)


def manifest_entry(name: str, path: Path | None = None) -> dict:
    """The manifest's record of one detector ({} when it has none: no validation figures measured)."""
    return dict(manifest(path)["detectors"].get(name) or {})


class Detector:
    """Base class: subclasses set kind and name and implement _labels(texts, emb)."""

    kind: str = ""
    name: str = ""

    def _labels(self, texts: list[str], emb: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def labels(self, texts: Sequence[str], emb: np.ndarray | None = None) -> np.ndarray:
        """One label of the kind per text (LABELS[kind]), as a str array."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        if emb is not None and len(emb) != len(texts):
            raise ValueError(f"{self.name}: {len(texts)} texts but {len(emb)} embeddings")
        if not texts:
            return np.zeros(0, dtype=object)
        return np.asarray(self._labels(texts, emb), dtype=object)

    def predict(self, texts: Sequence[str], emb: np.ndarray | None = None) -> np.ndarray:
        """True where the text is positive: a refusal (full or partial) / hedged."""
        return np.isin(self.labels(texts, emb), sorted(POSITIVE[self.kind]))

    @property
    def record(self) -> dict:
        return manifest_entry(self.name)

    @property
    def validation(self) -> dict[str, dict]:
        """{external set: figures} measured when the weights were built ({} when none were)."""
        return dict(self.record.get("validation") or {})

    @property
    def error_counts(self) -> tuple[int, int, int, int] | None:
        """(tp, fn, tn, fp) pooled over the held-out set the manifest names for correction; None without one."""
        rec = self.record
        fig = (rec.get("validation") or {}).get(rec.get("pooled") or "")
        if not fig:
            return None
        return int(fig["tp"]), int(fig["fn"]), int(fig["tn"]), int(fig["fp"])

    def describe(self) -> dict:
        """What metrics.json records of the detector: name, kind, pooled set and its figures."""
        rec = self.record
        pooled = rec.get("pooled")
        return {"name": self.name, "kind": self.kind, "pooled": pooled, "validation": self.validation}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
