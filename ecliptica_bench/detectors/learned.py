"""A learned detector: a linear (multinomial logistic) model over features.py's features, loaded from JSON.

weights/<kind>.json: {"format": FORMAT, "name", "kind", "classes": [label, ...], "features": {feature
config}, "coef": [[...] per class] (one row for a two-class model), "intercept": [...]}. Inference is
numpy over the JSON (no pickles): predict_proba = softmax(X @ coef.T + intercept) (sigmoid for one row),
the same arithmetic as sklearn's LogisticRegression.predict_proba. The binary call: positive when the
positive classes' probability sum reaches 0.5; the label is then the likeliest positive class, else the
likeliest negative one, so labels() and predict() never disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.io import read_json, sha256_file
from ..errors import EclipticaError
from .base import LABELS, POSITIVE, WEIGHTS_DIR, Detector, check_kind, manifest_entry
from .features import featurize

FORMAT = "ecliptica-linear-detector/1"


def weights_path(kind: str) -> Path:
    return WEIGHTS_DIR / f"{kind}.json"


def predict_proba(weights: dict, X) -> np.ndarray:
    """(n, len(classes)) class probabilities of the linear model in `weights` on feature matrix X."""
    coef = np.asarray(weights["coef"], dtype=np.float64)
    intercept = np.asarray(weights["intercept"], dtype=np.float64)
    z = np.asarray(X @ coef.T) + intercept
    if coef.shape[0] == 1:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def check_weights(weights: dict, where: str) -> dict:
    """The weights dict, or one EclipticaError naming the file and what is wrong."""
    if not isinstance(weights, dict) or weights.get("format") != FORMAT:
        raise EclipticaError(f"{where}: not a {FORMAT} weights file")
    for key in ("name", "kind", "classes", "features", "coef", "intercept"):
        if key not in weights:
            raise EclipticaError(f"{where}: missing {key!r}")
    kind = weights["kind"]
    if kind not in LABELS or set(weights["classes"]) - set(LABELS[kind]):
        raise EclipticaError(f"{where}: classes {weights['classes']} are not labels of kind {kind!r}")
    rows = np.asarray(weights["coef"], dtype=float)
    n_classes = len(weights["classes"])
    if rows.ndim != 2 or rows.shape[0] not in ({1} if n_classes == 2 else {n_classes}):
        raise EclipticaError(f"{where}: coef has shape {rows.shape} for {n_classes} classes")
    if len(weights["intercept"]) != rows.shape[0]:
        raise EclipticaError(f"{where}: intercept has {len(weights['intercept'])} entries for {rows.shape[0]} coef rows")
    return weights


class LearnedDetector(Detector):
    def __init__(self, weights: dict, embedder=None, where: str = "<weights>"):
        self.weights = check_weights(weights, where)
        self.kind = check_kind(weights["kind"])
        self.name = weights["name"]
        self.classes = list(weights["classes"])
        self.embedder = embedder
        pos = POSITIVE[self.kind]
        self._pos = np.array([c in pos for c in self.classes])

    @classmethod
    def load(cls, kind: str, path: Path | None = None, embedder=None) -> "LearnedDetector":
        path = Path(path or weights_path(kind))
        if not path.exists():
            raise EclipticaError(f"{path}: no learned {kind} detector shipped; build it with `ecliptica build-detectors`")
        det = cls(read_json(path, hint="rebuild it with `ecliptica build-detectors`"), embedder=embedder, where=str(path))
        want = det.record.get("weights_sha256")
        if path.parent == WEIGHTS_DIR and want and sha256_file(path) != want:
            raise EclipticaError(f"{path}: sha256 differs from the manifest's; rebuild with `ecliptica build-detectors`")
        if det.kind != kind:
            raise EclipticaError(f"{path}: a {det.kind} detector, not {kind}")
        return det

    def features(self, texts: list[str], emb: np.ndarray | None = None):
        return featurize(self.weights["features"], texts, emb, self.embedder)

    def predict_proba(self, texts, emb: np.ndarray | None = None) -> np.ndarray:
        texts = [t if isinstance(t, str) else "" for t in texts]
        if not texts:
            return np.zeros((0, len(self.classes)))
        return predict_proba(self.weights, self.features(texts, emb))

    def _labels(self, texts, emb):
        p = self.predict_proba(texts, emb)
        positive = p[:, self._pos].sum(axis=1) >= 0.5
        best_pos = np.where(self._pos, p, -1.0).argmax(axis=1)
        best_neg = np.where(~self._pos, p, -1.0).argmax(axis=1)
        cls = np.asarray(self.classes, dtype=object)
        return np.where(positive, cls[best_pos], cls[best_neg])

    @property
    def record(self) -> dict:
        return manifest_entry(self.name)
