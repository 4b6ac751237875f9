"""A user's detector: any Hugging Face sequence-classification model (hub id or local folder), through transformers.

    ecliptica score RUN --detector refusal=<model id or folder>[:POSITIVE_LABEL]

The model's config.id2label names its classes. The positive classes (refusal / hedged) are the one named
after the colon, or else those whose names are the kind's labels or obvious synonyms (POSITIVE_NAMES, case
and separators ignored); when that finds no class or every class, the label is ambiguous and the error lists
the model's labels so the user can name one. A text is positive when the positive classes' softmax
probabilities sum to 0.5 or more; labels() maps a positive class named like one of the kind's labels to it
(a three-way refusal model keeps full vs partial), any other positive to the kind's first positive label,
and negatives to the kind's negative label.

Inference is batched (BATCH texts, truncated to the model's maximum length), under torch.inference_mode, on
the GPU when torch.cuda.is_available(), else the CPU. Validation figures: none, unless the user gives them
(`with_validation`, from `ecliptica score --detector-validation`): without them the detector's rates are
reported raw only and the corrected ones are unscored ("no validation figures").
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import EclipticaError
from .base import LABELS, NEGATIVE, POSITIVE, Detector, check_kind, figures

BATCH = 32
MAX_LENGTH = 512

POSITIVE_NAMES: dict[str, frozenset[str]] = {
    "refusal": frozenset({"refusal", "refuse", "refused", "fullrefusal", "partialrefusal", "reject", "rejected", "rejection"}),
    "hedging": frozenset({"hedged", "hedge", "hedging", "uncertain", "unsure", "notconfident"}),
}


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def split_spec(spec: str) -> tuple[str, str | None]:
    """'<model>[:LABEL]' -> (model, LABEL or None); a Windows drive ('C:\\...') is not a label."""
    model, sep, label = spec.rpartition(":")
    if not sep or not model or not label or "/" in label or "\\" in label:
        return spec, None
    return model, label


class HFDetector(Detector):
    def __init__(
        self, kind: str, model: str, positive_label: str | None = None, batch_size: int = BATCH, device: str | None = None
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.kind = check_kind(kind)
        self.model_id = model
        where = f"--detector {kind}={model}"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise EclipticaError(f"{where}: cannot load a sequence-classification model ({exc})") from exc
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        id2label = {int(i): str(v) for i, v in (self.model.config.id2label or {}).items()}
        n = int(self.model.config.num_labels)
        self.class_names = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
        if positive_label is not None:
            pos = [i for i, c in enumerate(self.class_names) if c == positive_label]
            pos = pos or [i for i, c in enumerate(self.class_names) if c.lower() == positive_label.lower()]
            if not pos:
                raise EclipticaError(
                    f"{where}:{positive_label}: the model has no label {positive_label!r} (its labels: {self.class_names})"
                )
        else:
            pos = [i for i, c in enumerate(self.class_names) if _key(c) in POSITIVE_NAMES[kind]]
            if not pos or len(pos) == n:
                raise EclipticaError(
                    f"{where}: cannot tell which of the model's labels {self.class_names} means "
                    f"{'/'.join(sorted(POSITIVE[kind]))}; name it: --detector {kind}={model}:LABEL"
                )
        self.positive = np.zeros(n, dtype=bool)
        self.positive[pos] = True
        self.batch_size = int(batch_size)
        self.name = f"hf:{model}" + (f":{positive_label}" if positive_label else "")
        self._validation: dict[str, dict] = {}
        self._pooled: str | None = None

    def with_validation(self, validation: dict[str, dict], pooled: str) -> "HFDetector":
        """Validation figures the user measured ({set: {tp, fn, tn, fp, ...}}) and the set the correction uses."""
        out = {}
        for name, fig in validation.items():
            try:
                counts = [int(fig[k]) for k in ("tp", "fn", "tn", "fp")]
            except (KeyError, TypeError, ValueError):
                raise EclipticaError(f"{self.name}: validation set {name!r} needs integer tp, fn, tn, fp") from None
            out[name] = {**fig, **figures(*counts)}
        if pooled not in out:
            raise EclipticaError(f"{self.name}: pooled validation set {pooled!r} is not among {sorted(out)}")
        self._validation, self._pooled = out, pooled
        return self

    @property
    def record(self) -> dict:
        return {"validation": self._validation, "pooled": self._pooled} if self._validation else {}

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(n, n_classes) softmax probabilities, batched."""
        import torch

        out = []
        limit = min(MAX_LENGTH, int(getattr(self.tokenizer, "model_max_length", MAX_LENGTH) or MAX_LENGTH))
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[i : i + self.batch_size], padding=True, truncation=True, max_length=limit, return_tensors="pt"
                ).to(self.device)
                out.append(torch.softmax(self.model(**enc).logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)))

    def _labels(self, texts, emb):
        p = self.probabilities(list(texts))
        positive = p[:, self.positive].sum(axis=1) >= 0.5
        best = np.where(self.positive, p, -1.0).argmax(axis=1)
        own = {_key(lab): lab for lab in LABELS[self.kind]}
        default = sorted(POSITIVE[self.kind])[0]
        pos_label = np.array(
            [own.get(_key(c), default) if own.get(_key(c)) in POSITIVE[self.kind] else default for c in self.class_names]
        )
        return np.where(positive, pos_label[best], NEGATIVE[self.kind]).astype(object)


def hf_detector(kind: str, spec: str, embedder=None) -> HFDetector:
    """SPECS["hf"]: '<model id or folder>[:POSITIVE_LABEL]' -> HFDetector (the embedder is not used)."""
    model, label = split_spec(spec)
    return HFDetector(kind, model, label)
