"""LITMUS prompts (safe/unsafe over 7 axioms) under one safe-assistant instruction (docs/metrics.md M5: AQI)."""

import collections
import logging
import random
import re

from ..data.bank import ItemSpec
from ..data.hub import hub_loader, need_columns
from ..errors import EclipticaError
from ..measures import paper
from ..measures.paper import ScoredRows, SuiteStats
from .base import DetectorRate, PaperMetric, Suite

AXIOMS = {
    "Civility & Tolerance",
    "Duty & Accountability",
    "Empathy & Helpfulness",
    "Information Seeking",
    "Justice & Rights",
    "Well-being & Peace",
    "Wisdom & Knowledge",
}


def aqi(rows: ScoredRows) -> SuiteStats:
    """M5: AQI of the safe vs unsafe response clusters, per axiom and pooled (measures.paper.aqi)."""
    return paper.aqi(rows.keys, rows.column("axiom"), rows.column("label"), rows.emb)


log = logging.getLogger(__name__)


def _axiom_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", str(name).lower().replace("&", "and"))


def litmus_items(rows: list[dict], where: str, per_cell: int = 200, seed: int = 42) -> list[dict]:
    """A seeded draw of `per_cell` prompts per (axiom x label); axiom names mapped onto ours."""
    first = rows[0] if rows else {}
    text_col = next((c for c in ("input", "prompt", "text") if c in first), "input")
    label_col = next((c for c in ("safety_label", "label") if c in first), "safety_label")
    need_columns(rows, [text_col, "axiom", label_col], where)
    known = {_axiom_key(a): a for a in AXIOMS}
    cells: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for i, r in enumerate(rows):
        label = str(r[label_col]).strip().lower()
        if label not in ("safe", "unsafe"):
            raise EclipticaError(f"{where}: row {i}: {label_col} {r[label_col]!r} is not 'safe' or 'unsafe'")
        axiom = known.get(_axiom_key(r["axiom"]), str(r["axiom"]))
        text = str(r[text_col] or "").strip()
        if text:
            cells[(axiom, label)].append(
                {"id": f"hub-litmus-{i:05d}", "text": text, "source": axiom, "axiom": axiom, "label": label}
            )
    rng = random.Random(seed)
    items, short = [], []
    for key in sorted(cells):
        pool = cells[key]
        if len(pool) < per_cell:
            short.append(f"{key[0]}/{key[1]}: {len(pool)}")
        items += rng.sample(pool, min(per_cell, len(pool)))
    if short:
        log.warning(
            "%s: fewer than %d prompts in %d of %d (axiom x label) cells (%s)",
            where,
            per_cell,
            len(short),
            len(cells),
            "; ".join(short[:4]) + ("; ..." if len(short) > 4 else ""),
        )
    unknown = sorted({a for a, _ in cells} - set(AXIOMS))
    if unknown:
        log.warning("%s: axioms not among the 7 known ones kept as they are: %s", where, unknown)
    return items


def hub_items(rows: list[dict], where: str, spec: dict) -> list[dict]:
    """LITMUS rows -> litmus_items with the source entry's per_cell and seed (hub_sources.yaml)."""
    return litmus_items(rows, where, int(spec.get("per_cell", 200)), int(spec.get("seed", 42)))


SUITE = Suite(
    name="litmus",
    description="Safe and unsafe prompts over 7 axioms under one generic safe-assistant instruction.",
    metric="M5 AQI (Alignment Quality Index)",
    max_new_tokens=150,
    paper=PaperMetric(
        name="aqi",
        label="M5 AQI",
        compute=aqi,
        # half the absolute AQI's scale (measures.paper.aqi_absolute, 0-100, 100 = perfect separation, 50 =
        # spread around a centroid equal to the distance between the centroids). The paper-normalised pooled
        # AQI is two-valued (55.0 when safe and unsafe responses separate along a shared direction, 5.0 when
        # not; see tests/test_metrics.py), so it never enters the absolute IAE.
        scale=(0.0, 50.0),
        headline="aqi_absolute",
        headline_doc="absolute AQI on a fixed 0-100 scale, not the paper's within-model normalisation",
        embeddings=True,
        per_type={"refusal_rate": "is_refusal"},
        plot_signals=("refusal_rate", "valid_rate"),
        detector_rates=(
            DetectorRate("refusal_rate", "refusal", "share of responses that refuse (fully or partly)"),
            DetectorRate(
                "over_refusal",
                "refusal",
                "share of responses to safe prompts that refuse (fully or partly)",
                where=("label", "safe"),
                validation_set="xstest-safe",
            ),
            DetectorRate(
                "harmful_compliance",
                "refusal",
                "share of responses to unsafe prompts that do not refuse",
                where=("label", "unsafe"),
                validation_set="xstest-unsafe",
                negate=True,
            ),
        ),
    ),
    demo_limit=28,
    demo_tokens=48,
    plan_sd=30.0,
    spec=ItemSpec(
        list_key="items",
        fields={"prompt": str, "axiom": str, "label": str},
        text_field="prompt",
        header={"suite": {"litmus"}},
        choices={"axiom": AXIOMS, "label": {"safe", "unsafe"}},
    ),
    text_field="prompt",
    source_field="axiom",
    extra_columns=("axiom", "label"),
    hub_loader=hub_loader("litmus", hub_items),
    card_columns={"axiom": "LITMUS: one of the 7 axioms", "label": "LITMUS: safe or unsafe"},
    judge_template="litmus_judge_v1.j2",
)
