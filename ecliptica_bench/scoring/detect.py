"""The detectors `ecliptica score` runs, their per-row columns, and every detector rate raw and corrected.

Per kind (refusal, hedging) up to three detectors flag every row:
    keyword   measures.paper.is_refusal / has_hedge: the paper-compatible columns is_refusal / has_hedge, and
              what every paper value (metrics.json paper, headline, delta, delta_paper, signals) is built on
    learned   the shipped learned detector (detectors.get(kind, "learned")), when its weights ship:
              refusal_learned (+ refusal_label: full_refusal | partial_refusal | full_compliance), hedge_learned
    user      `--detector kind=SPEC` (an HF sequence-classification model id or folder, detectors/hf.py):
              refusal_user, hedge_user; validation figures only when the user gives them (--detector-validation)

metrics.json (added beside the paper values, which stay the keyword detector's):
    detectors        {name: {kind, role, column, pooled, validation {set: figures}, correction (the pooled
                     counts, sensitivity, specificity, youden_j) or null, note}}
    detector_best    {kind: the name whose corrected values the headline uses, or null}: user (with validation
                     figures) over learned over keyword, the first with figures
    suites.<s>.detector_scores  {rate: {type ("rate" | "difference"), detector (kind), rows, doc,
                     validation_set, conditions {cond: {detector name: {raw, corrected, validation}}},
                     delta {detector name: {raw, corrected, validation}}}}: the suite's declared
                     DetectorRates and, where its metric is built from a detector (PaperMetric.detector), the
                     metric's components (rates) and its headline (a difference) re-computed on each
                     detector's flags; `delta` = instructed - uninstructed, a difference
    suites.<s>.delta_corrected (+ delta_corrected_detector)  the headline Delta of the best detector, corrected
                     (only suites whose headline is built from a detector)
`validation` names the set behind each correction with its n, sensitivity and specificity (a DetectorRate's
own set where the detector measured it, e.g. xstest-safe for over-refusal, else the pooled one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import detectors as detectors_mod
from ..chat import CONDITIONS, INSTRUCTED, UNINSTRUCTED
from ..data.io import read_json
from ..errors import EclipticaError
from ..measures import paper
from ..measures.correction import DIFFERENCE, RATE, ErrorCounts, corrected
from ..measures.stats import Bootstrap, Score, Statistic, difference, mean_statistic
from ..suites import get_suite

log = logging.getLogger(__name__)

KINDS = ("refusal", "hedging")
ROLES = ("keyword", "learned", "user")
COLUMN = {
    ("refusal", "keyword"): "is_refusal",
    ("hedging", "keyword"): "has_hedge",
    ("refusal", "learned"): "refusal_learned",
    ("hedging", "learned"): "hedge_learned",
    ("refusal", "user"): "refusal_user",
    ("hedging", "user"): "hedge_user",
}
LABEL_COLUMN = "refusal_label"  # the learned refusal detector's three-way label
# the per-row columns this module adds to scores.parquet after the keyword ones (null where a detector did not run)
COLUMNS = ["refusal_learned", "refusal_label", "refusal_user", "hedge_learned", "hedge_user"]
NO_FIGURES = "no validation figures"


@dataclass
class Used:
    """One detector of the run: its role, its per-row column and its flags."""

    detector: object  # detectors.Detector
    role: str
    flags: np.ndarray | None = None
    labels: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return self.detector.kind

    @property
    def name(self) -> str:
        return self.detector.name

    @property
    def column(self) -> str:
        return COLUMN[(self.kind, self.role)]

    def counts(self, validation_set: str | None = None) -> ErrorCounts | None:
        """The confusion counts behind a correction: `validation_set` where the detector measured it, else its
        pooled set; None without figures (or where a set lacks a class: no sensitivity or specificity)."""
        validation = self.detector.validation or {}
        pooled = (self.detector.record or {}).get("pooled")
        name = validation_set if validation_set in validation else pooled
        fig = validation.get(name) if name else None
        if not fig:
            return None
        try:
            return ErrorCounts(int(fig["tp"]), int(fig["fn"]), int(fig["tn"]), int(fig["fp"]), str(name))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: validation set %s unusable for a correction (%s)", self.name, name, exc)
            return None

    def describe(self) -> dict:
        c = self.counts()
        return {
            "name": self.name,
            "kind": self.kind,
            "role": self.role,
            "column": self.column,
            "pooled": c.source if c else None,
            "validation": self.detector.validation or {},
            "correction": c.to_dict() if c else None,
            "note": None if c else NO_FIGURES,
        }


def parse_specs(specs, validation_specs=()) -> tuple[dict[str, str], dict[str, Path]]:
    """--detector KIND=SPEC and --detector-validation KIND=FILE (repeatable) -> ({kind: spec}, {kind: file})."""
    out: list[dict] = [{}, {}]
    for i, (items, option) in enumerate(((specs, "--detector"), (validation_specs, "--detector-validation"))):
        for s in items or ():
            kind, sep, value = str(s).partition("=")
            kind, value = kind.strip(), value.strip()
            if not sep or not value:
                raise EclipticaError(f"{option} {s!r}: expected KIND=VALUE with KIND one of {', '.join(KINDS)}")
            if kind not in KINDS:
                raise EclipticaError(f"{option} {s!r}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
            if kind in out[i]:
                raise EclipticaError(f"{option}: {kind} given twice")
            out[i][kind] = value if i == 0 else Path(value)
    extra = sorted(set(out[1]) - set(out[0]))
    if extra:
        raise EclipticaError(f"--detector-validation {extra[0]}=...: no --detector {extra[0]}=SPEC to validate")
    return out[0], out[1]


def read_validation(path: Path, where: str) -> tuple[dict[str, dict], str]:
    """A user's validation figures: {"pooled": SET, "validation": {SET: {tp, fn, tn, fp, ...}}}, or one set's
    counts {tp, fn, tn, fp} (named after the file). One error naming the file and entry otherwise."""
    path = Path(path)
    data = read_json(path, hint=f"{where}: a JSON object of validation counts")
    if not isinstance(data, dict):
        raise EclipticaError(f"{path}: {where}: must be a JSON object")
    if "validation" in data:
        sets, pooled = data["validation"], data.get("pooled")
        if not isinstance(sets, dict) or not sets:
            raise EclipticaError(f"{path}: validation: must be a non-empty object {{set: counts}}")
        if pooled is None and len(sets) == 1:
            pooled = next(iter(sets))
        if pooled not in sets:
            raise EclipticaError(f"{path}: pooled: {pooled!r} must name one of the sets {sorted(sets)}")
    else:
        sets, pooled = {path.stem: data}, path.stem
    for name, fig in sets.items():
        for k in ("tp", "fn", "tn", "fp"):
            v = fig.get(k) if isinstance(fig, dict) else None
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise EclipticaError(f"{path}: validation.{name}.{k}: must be a non-negative integer, got {v!r}")
    return sets, pooled


class DetectorSet:
    """The run's detectors per kind, in role order (keyword, learned, user)."""

    def __init__(self, used: list[Used]):
        self.used = used

    @classmethod
    def build(
        cls, specs: dict[str, str] | None = None, validation: dict[str, Path] | None = None, embedder=None
    ) -> "DetectorSet":
        specs, validation = specs or {}, validation or {}
        used = []
        for kind in KINDS:
            used.append(Used(detectors_mod.get(kind, "keyword"), "keyword"))
            if detectors_mod.learned_available(kind):
                used.append(Used(detectors_mod.get(kind, "learned", embedder=embedder), "learned"))
            if kind in specs:
                det = detectors_mod.get(kind, specs[kind], embedder=embedder)
                if kind in validation:
                    if not hasattr(det, "with_validation"):
                        raise EclipticaError(
                            f"--detector-validation {kind}=...: {det.name} has its own validation figures; give figures only for a user model"
                        )
                    sets, pooled = read_validation(validation[kind], f"--detector-validation {kind}")
                    det.with_validation(sets, pooled)
                used.append(Used(det, "user"))
        return cls(used)

    def of(self, kind: str) -> list[Used]:
        return [u for u in self.used if u.kind == kind]

    def run(self, texts: list[str], E: np.ndarray | None, cols: dict) -> dict:
        """Flag every row with every detector; the keyword flags come from cols (already computed). Returns the
        per-row columns of COLUMNS (None where a detector did not run)."""
        n = len(texts)
        out = {c: np.full(n, None, dtype=object) for c in COLUMNS}
        for u in self.used:
            if u.role == "keyword":
                u.flags = np.asarray(cols[u.column], dtype=bool)
                continue
            labels = u.detector.labels(texts, E)
            u.labels = labels
            u.flags = np.isin(labels, sorted(detectors_mod.POSITIVE[u.kind]))
            out[u.column] = u.flags
            if u.kind == "refusal" and u.role == "learned":
                out[LABEL_COLUMN] = labels
        return out

    def best(self, kind: str) -> Used | None:
        """The detector whose corrected values the headline uses: user over learned over keyword, the first whose
        validation figures identify a correction (measures.correction: sensitivity + specificity - 1 > J_FLOOR)."""
        for role in ("user", "learned", "keyword"):
            for u in self.of(kind):
                c = u.counts() if u.role == role else None
                if c is not None and c.identified:
                    return u
        return None

    def describe(self) -> tuple[dict, dict]:
        """(metrics.json `detectors`, `detector_best`)."""
        best = {k: (b.name if (b := self.best(k)) else None) for k in KINDS}
        return {u.name: u.describe() for u in self.used}, best


# ------------------------------------------------------------------------------------------ per suite
def _pair(boot: Bootstrap, raw: Statistic, counts: ErrorCounts | None, kind: str, seed: int) -> dict:
    """{raw, corrected, validation} Scores of one statistic of one detector."""
    c = corrected(raw, counts, kind, seed)
    return {
        "raw": boot.score(raw).to_dict(),
        "corrected": (
            Score.unscored(c, raw.n) if isinstance(c, str) else boot.score(c, "statistic undefined on this data")
        ).to_dict(),
        "validation": None
        if counts is None
        else {"set": counts.source, "n": counts.n, "sensitivity": counts.sensitivity, "specificity": counts.specificity},
    }


def _where(df, idx: np.ndarray, where: tuple[str, str] | None) -> np.ndarray:
    """The rows of idx whose column holds the value (all of idx for None; none when the column is missing)."""
    if where is None:
        return idx
    column, value = where
    if column not in df.columns:
        return idx[:0]
    return idx[df[column].to_numpy()[idx] == value]


def suite_detector_scores(
    suite: str, df, sidx: np.ndarray, keys: np.ndarray, rows_of, dset: DetectorSet, boot: Bootstrap, seed: int = 0
) -> dict:
    """metrics.json suites.<suite>.detector_scores (module docstring) and delta_corrected. `rows_of(idx, flags)`
    gives the suite's ScoredRows of rows idx with the given detector flags (scoring.score.scored_rows)."""
    metric = get_suite(suite).paper
    spec_rates = list(metric.detector_rates)
    if not spec_rates and metric.detector is None:
        return {}
    conds = {c: sidx[df["condition"].to_numpy()[sidx] == c] for c in CONDITIONS}
    conds = {c: idx for c, idx in conds.items() if len(idx)}
    # name -> {cond: {detector: (Statistic, counts)}} and the block's description
    stats: dict[str, dict[str, dict[str, tuple[Statistic, ErrorCounts | None]]]] = {}
    meta: dict[str, dict] = {}
    for r in spec_rates:
        meta[r.name] = {
            "type": RATE,
            "detector": r.kind,
            "rows": "all" if r.where is None else f"{r.where[0]}={r.where[1]}",
            "doc": r.doc,
            "validation_set": r.validation_set,
        }
        for cond, idx in conds.items():
            ridx = _where(df, idx, r.where)
            if len(ridx) == 0:
                continue
            for u in dset.of(r.kind):
                flags = u.flags[ridx]
                counts = u.counts(r.validation_set)
                if r.negate:
                    flags, counts = ~flags, (counts.negated() if counts else None)
                stat = mean_statistic(keys[ridx], flags.astype(float))
                stats.setdefault(r.name, {}).setdefault(cond, {})[u.name] = (stat, counts)
    if metric.detector is not None:
        kind = metric.detector
        for cond, idx in conds.items():
            for u in dset.of(kind):
                try:
                    s = metric.compute(rows_of(idx, {kind: u.flags[idx]}))
                except paper.MissingType:
                    continue
                counts = u.counts()
                for name, comp in s.components.items():
                    if comp is s.headline or comp is s.paper:  # the headline itself (M3's refusal_signed): below
                        continue
                    meta.setdefault(
                        name,
                        {
                            "type": RATE,
                            "detector": kind,
                            "rows": f"component of {metric.name}",
                            "doc": "",
                            "validation_set": None,
                        },
                    )
                    stats.setdefault(name, {}).setdefault(cond, {})[u.name] = (comp, counts)
                meta.setdefault(
                    "headline",
                    {
                        "type": DIFFERENCE,
                        "detector": kind,
                        "rows": "all",
                        "doc": f"{metric.headline_name} (the suite's headline)",
                        "validation_set": None,
                    },
                )
                stats.setdefault("headline", {}).setdefault(cond, {})[u.name] = (s.headline, counts)
    out: dict = {}
    for name, by_cond in stats.items():
        block = {**meta[name], "conditions": {}, "delta": {}}
        for cond, by_det in by_cond.items():
            block["conditions"][cond] = {d: _pair(boot, st, c, meta[name]["type"], seed) for d, (st, c) in by_det.items()}
        ins, unins = by_cond.get(INSTRUCTED, {}), by_cond.get(UNINSTRUCTED, {})
        for d in ins:
            if d in unins:
                block["delta"][d] = _pair(boot, difference(ins[d][0], unins[d][0]), ins[d][1], DIFFERENCE, seed)
        out[name] = block
    return out


def delta_corrected(scores: dict, best: Used | None) -> tuple[dict | None, str | None]:
    """The suite's headline Delta corrected with the best detector (Score dict, detector name); (None, None)
    when the headline is not built from a detector; an unscored Score when no detector has figures."""
    head = scores.get("headline")
    if not head or not head["delta"]:
        return None, None
    if best is None or best.name not in head["delta"]:
        return Score.unscored(f"{NO_FIGURES} for any {head['detector']} detector").to_dict(), None
    return head["delta"][best.name]["corrected"], best.name
