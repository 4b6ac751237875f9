"""The paper-compatible keyword detectors (measures.paper.is_refusal / has_hedge) in the detector interface.

They cannot tell a partial refusal from a full one: a hit is "full_refusal" ("hedged"), no hit
"full_compliance" ("confident"). Their validation figures are measured on the same external sets as the
learned detectors' (weights/manifest.json, "keyword:<kind>").
"""

from __future__ import annotations

import numpy as np

from ..measures import paper
from .base import NEGATIVE, Detector, check_kind

_FUNCTIONS = {"refusal": paper.is_refusal, "hedging": paper.has_hedge}
_HIT = {"refusal": "full_refusal", "hedging": "hedged"}


class KeywordDetector(Detector):
    def __init__(self, kind: str):
        self.kind = check_kind(kind)
        self.name = f"keyword:{kind}"

    def _labels(self, texts, emb):
        hits = _FUNCTIONS[self.kind](texts)
        return np.where(hits, _HIT[self.kind], NEGATIVE[self.kind]).astype(object)
