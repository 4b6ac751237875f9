"""The leaderboard: scored runs -> one row per method, with the paper's IAE headline.

A *method* is a model plus adapter (runs grouped by `model_fingerprint` + `adapter` from metrics.json), or
whatever `names` groups together. One run may hold both conditions of a suite, or a run pair may hold one
each; either way the row gets the suite's two gains: Delta = headline(instructed) - headline(uninstructed)
(signed: switching the wrong way is negative; the absolute AQI for LITMUS), the board's Delta and the
input of the absolute IAE, and the paper-compatible Delta_paper = paper(instructed) - paper(uninstructed)
(the paper's |M3|, the within-model AQI), the input of the paper IAE.
The column schema is fixed (every registered suite, always in the same order) and documented line by line
in results/SCHEMA.md, which `schema_markdown()` generates and a test keeps in step.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.io import atomic_write_text
from ..errors import EclipticaError, Problem, ValidationError
from ..rundir import METRICS, Manifest, read_likelihood, read_manifest, read_metrics
from ..scoring import power
from ..suites import SUITES

log = logging.getLogger(__name__)

CONDITIONS = ("instructed", "uninstructed")

# The per-suite signals taken onto the board (instructed condition), in column order.
SIGNALS = (
    "valid_rate",
    "echo_rate",
    "identifiability",
    "identifiability_valid",
    "judge_adherence",
    "judge_adherence_valid",
    "signed_switching",
    "truncation_rate",
    "judge_unscored_rate",
)

GLOBAL_COLUMNS: list[tuple[str, str]] = [
    ("rank", "1-based position on the board (sorted by iae_paper, then iae_abs, both descending, then method)"),
    ("method", "method name: --name RUN_DIR=NAME, else the run's model alias + '+' + adapter basename"),
    ("model", "model alias or path from the run (metrics.json `model`)"),
    ("model_fingerprint", "fingerprint of the model weights (metrics.json `model_fingerprint`)"),
    ("adapter", "adapter path, empty when the base model ran"),
    (
        "seeds",
        "number of sampling seeds averaged into this row (runs of one method that differ only in "
        "manifest seeds.sampling; 1 for a single run or run pair)",
    ),
    (
        "iae_paper",
        "paper-compatible IAE (10-100), the published formula: 100 x mean over iae_suites of "
        "r = 0.1 + 0.9 x min-max-normalised `<suite>__delta_paper` across the methods on this board "
        "(r = 1 where all methods tie, e.g. a single method; ecliptica_bench.metrics.iae `relative`). "
        "Uses the paper's |M3|, so wrong-direction Conditional Safety switching still scores",
    ),
    (
        "iae_abs",
        "absolute IAE (-100 to 100): 100 x mean over iae_suites of the signed `<suite>__delta` on fixed "
        "per-suite scales, clipped to [-1, 1] (each suite's Suite.paper.scale, ecliptica_bench.metrics.absolute_scales; litmus: the "
        "absolute AQI), comparable across boards; switching the wrong way is negative (`absolute`)",
    ),
    (
        "iae_suites",
        "';'-joined suites entering both IAEs: those where every method on the board has both Deltas "
        "(a suite some method lacks is left out for all, so all methods are compared on the same suites)",
    ),
]

SUITE_COLUMNS: list[tuple[str, str]] = [
    ("paper", "paper-compatible metric ({metric}) under the instructed condition"),
    ("paper_ci_half", "half-width of the 95% clustered-bootstrap CI of `{suite}__paper` ((ci_high - ci_low) / 2)"),
    ("paper_valid", "the same paper-compatible metric on valid responses only (instructed)"),
    ("paper_uninstructed", "the paper-compatible metric under the uninstructed (no system message) control"),
    (
        "headline",
        "headline metric ({headline}) under the instructed condition: signed / on a fixed scale "
        "(metrics.json conditions.instructed.headline)",
    ),
    (
        "delta",
        "headline gain Delta = headline(instructed) - headline(uninstructed) ({headline}; switching the "
        "wrong way is negative), the board's Delta and what iae_abs uses. Where the headline is built from a "
        "detector's flags (M2 hedging, M3 refusal) it is the value corrected for the detector's measured "
        "error (Rogan-Gladen, measures/correction.py) with the best detector that has validation figures "
        "(`{suite}__delta_detector`; metrics.json `delta_corrected`), else metrics.json `delta` (the keyword "
        "detector's, uncorrected); for a run pair, the difference of the two runs' (corrected) headline values",
    ),
    (
        "delta_detector",
        "the detector whose corrected value `{suite}__delta` is (e.g. learned:refusal-v1; metrics.json "
        "`delta_corrected_detector`); empty when `{suite}__delta` is the uncorrected keyword Delta (a headline "
        "not built from a detector, or no detector with validation figures)",
    ),
    (
        "delta_raw",
        "the uncorrected headline Delta of the paper's keyword detector (metrics.json `delta`); equals "
        "`{suite}__delta` where `{suite}__delta_detector` is empty",
    ),
    (
        "delta_ci_half",
        "half-width of the CI of the Delta (empty for a run pair: no joint bootstrap exists); "
        "for several seeds: t_(0.975, df) x sqrt(W + B/K), W = mean squared per-seed SE, B = "
        "variance of the K seed Deltas, df by Welch-Satterthwaite (scoring.power.seed_mean)",
    ),
    (
        "mdd",
        "minimum detectable Delta at this row's prompts: (z_0.975 + z_0.8) x SE = 2.8016 x SE, SE = "
        "metrics.json `delta_se` (bootstrap SD of the Delta over prompt resamples; else CI width / 3.92); "
        "for several seeds SE = sqrt(W + B/K) as in delta_ci_half; empty for a run pair",
    ),
    (
        "p_next",
        "Holm-corrected p-value (over all adjacent pairs and suites on this board) of a paired bootstrap "
        "test that this row's Delta equals the next row's, on the cases both runs share (scoring.compare "
        "`delta_difference_p`); empty for the last row, seed-averaged rows, run pairs, or runs without "
        "scores.parquet / with different datasets or embedders",
    ),
    (
        "tied_with_next",
        "1 when `{suite}__p_next` >= 0.05 (this row and the next cannot be told apart on "
        "{suite}; the markdown board marks the Delta with '='), 0 when they differ, empty untested",
    ),
    (
        "delta_paper",
        "paper-compatible gain = `{suite}__paper` - `{suite}__paper_uninstructed` ({metric}), what "
        "iae_paper uses; from metrics.json `delta_paper`, or the difference of the two runs' values",
    ),
    (
        "valid_rate",
        "share of instructed responses that are valid (not empty, looping, off-topic, an echo of the "
        "instruction, or truncated where the run's budget is at or above the paper's; metrics.json "
        "scoring.truncation_policy says which applied)",
    ),
    ("echo_rate", "share of instructed responses that restate the instruction instead of answering (invalid)"),
    (
        "identifiability",
        "grouped cross-validated accuracy of recovering the instruction type from the instructed response embedding",
    ),
    ("identifiability_valid", "the same, refitted and evaluated on valid instructed responses only"),
    (
        "judge_adherence",
        "share of instructed responses the LLM judge found to show the expected behaviour (empty without a judge)",
    ),
    ("judge_adherence_valid", "the same, over valid instructed responses only (empty without a judge)"),
    ("signed_switching", "direction-aware switching score (wrong-direction switching counts negative)"),
    (
        "truncation_rate",
        "share of instructed responses cut at max_new_tokens (finish_reason 'length'); they stay "
        "valid when the run's budget is below the suite's paper budget (a deliberately short "
        "budget), else they are invalid (metrics.json scoring.truncation_policy)",
    ),
    ("judge_unscored_rate", "share of instructed responses the judge left unscored (unparseable verdict)"),
    ("n", "number of instructed cases behind `{suite}__paper`"),
]

# From RUN_DIR/likelihood.json (`ecliptica likelihood`; definitions in ecliptica_bench/likelihood.py), empty without it.
LIKELIHOOD_COLUMNS: list[tuple[str, str]] = [
    (
        "likelihood_switched",
        "share of held-out switch pairs where each of the two instructions makes its own response "
        "more likely than the other one (teacher-forced log-likelihood, no generation; "
        "likelihood.json overall.switched)",
    ),
    ("likelihood_switched_ci_half", "half-width of the 95% CI of `likelihood_switched` (bootstrap clustered by pair)"),
    ("likelihood_switched_per_token", "the same on per-token (length-normalised) log-likelihoods"),
    (
        "likelihood_margin_per_token",
        "mean over pairs of the interaction margin [lp(rA|iA) - lp(rB|iA)] + "
        "[lp(rB|iB) - lp(rA|iB)] on per-token log-likelihoods (nats per token)",
    ),
    ("likelihood_margin_per_token_ci_half", "half-width of the 95% CI of `likelihood_margin_per_token`"),
    ("likelihood_pairs", "number of switch pairs behind the likelihood columns"),
]

# Per switching axis of the preference set (each suite's Suite.preference kind), from likelihood.json per_kind.
AXIS_COLUMNS: list[tuple[str, str]] = [
    (
        "margin",
        "held-out interaction margin on the {axis} axis (the pairs of suite {suite}): mean over its switch pairs "
        "of [lp(rA|iA) - lp(rB|iA)] + [lp(rB|iB) - lp(rA|iB)], summed log-likelihoods in nats, A = {type_a}, "
        "B = {type_b} (likelihood.json per_kind.{axis}.margin); 0 for a model that ignores the instruction, "
        "> 0 when each instruction favours its own response",
    ),
    ("margin_ci_half", "half-width of the 95% CI of `likelihood__{axis}__margin` (bootstrap clustered by pair)"),
    (
        "p_next",
        "Holm-corrected p-value (over all adjacent pairs and axes on this board; a family of its own, apart "
        "from the suites') of a paired bootstrap test that this row's {axis} margin equals the next row's, on "
        "the held-out pairs both likelihood.json files share; empty for the last row or without per-pair margins",
    ),
    (
        "tied_with_next",
        "1 when `likelihood__{axis}__p_next` >= 0.05 (the markdown board marks the margin with '='), 0 when "
        "they differ, empty untested",
    ),
]


def switching_axes() -> dict[str, tuple[str, str, str]]:
    """The preference set's switching axes, in suite order: kind -> (suite, type A, type B), from each
    suite's Suite.preference (A is the kind's first instruction type, as in likelihood.json)."""
    out = {}
    for name, s in SUITES.items():
        if s.preference is not None and s.preference.kind not in out:
            types = list(s.preference.types)
            out[s.preference.kind] = (name, types[0], types[1] if len(types) > 1 else "")
    return out


TRAILING_COLUMNS: list[tuple[str, str]] = [
    ("judge", "judge id `model@template_version` ('' when no judge ran; ';'-joined if runs differ)"),
    ("embedder", "sentence embedder used for M1 / identifiability / AQI (';'-joined if runs differ)"),
    ("dataset_sha", "sha of the built dataset the runs used (';'-joined if the method's runs differ)"),
    ("run_ids", "';'-joined run ids of the runs behind this row, sorted"),
]


def suite_order(names) -> list[str]:
    """Suites in registry order (metrics.json has its keys sorted), unknown ones after, alphabetically."""
    names = list(names)
    return [s for s in SUITES if s in names] + sorted(s for s in names if s not in SUITES)


def suite_order_items(suites: dict) -> list[tuple[str, dict]]:
    return [(s, suites[s]) for s in suite_order(suites)]


def suite_metric_name(suite: str) -> str:
    return SUITES[suite].metric if suite in SUITES else suite


def suite_headline_name(suite: str) -> str:
    """What the suite's headline Delta is, next to the paper's (Suite.paper.headline_doc)."""
    doc = SUITES[suite].paper.headline_doc if suite in SUITES else ""
    return doc or suite_metric_name(suite)


def schema() -> list[tuple[str, str]]:
    """(column, description) for every leaderboard column, in CSV order."""
    cols = list(GLOBAL_COLUMNS)
    for s in SUITES:
        cols += [
            (f"{s}__{c}", d.format(suite=s, metric=suite_metric_name(s), headline=suite_headline_name(s)))
            for c, d in SUITE_COLUMNS
        ]
    cols += LIKELIHOOD_COLUMNS
    for axis, (suite, a, b) in switching_axes().items():
        cols += [(f"likelihood__{axis}__{c}", d.format(axis=axis, suite=suite, type_a=a, type_b=b)) for c, d in AXIS_COLUMNS]
    return cols + list(TRAILING_COLUMNS)


def columns() -> list[str]:
    return [c for c, _ in schema()]


def schema_markdown() -> str:
    """The text of results/SCHEMA.md: one line per column, generated from `schema()`."""
    head = [
        "# Leaderboard columns (results/leaderboard.csv)",
        "",
        "Written by `ecliptica leaderboard` / `ecliptica_bench.report.build_leaderboard`. One row per method,",
        "sorted by IAE. The CSV has no index column; empty cells are missing values (a suite not run, a",
        "condition not run, a judge not used). Columns exist for every registered suite, always in this",
        "order. Per-suite values are the instructed condition unless the line says otherwise. Generated",
        "from `ecliptica_bench.report.leaderboard.schema()` by `python -m ecliptica_bench.docs`; tests check",
        "the CSV header against this file.",
        "",
        "Two Deltas, two IAEs (docs/metrics.md). `<suite>__delta` is the headline gain: signed, so an",
        "instruction that moves behaviour the wrong way (e.g. refusing under PERMISSIVE and helping under",
        "STRICT) is negative, and for litmus on the absolute AQI; `iae_abs` is built from it. `<suite>__delta_paper`",
        "is the published gain (the paper's |M3|, the within-model AQI); `iae_paper`, the paper-compatible IAE,",
        "is built from it and reproduces the paper's formula, wrong-direction switching included.",
        "",
        "Detector error. Where a suite's headline is built from a detector's flags (M2 hedging, M3 refusal),",
        "`<suite>__delta` is corrected for that detector's measured sensitivity and specificity (Rogan-Gladen:",
        "Delta / (sensitivity + specificity - 1), its CI also carrying the error rates' uncertainty;",
        "ecliptica_bench/measures/correction.py), using the best detector with validation figures (a user's",
        "`--detector` over the learned over the keyword one), named in `<suite>__delta_detector`;",
        "`<suite>__delta_raw` keeps the keyword detector's uncorrected Delta. `<suite>__delta_paper` and",
        "`iae_paper` stay the paper's keyword detector, uncorrected. metrics.json `detectors` holds each",
        "detector's validation figures and `suites.<suite>.detector_scores` every detector rate raw and corrected.",
        "",
        "Truncation: `<suite>__truncation_rate` is the share of instructed answers that hit the run's",
        "max_new_tokens. A run whose budget is below the suite's paper budget (the CPU demo's 64 instead of",
        "256) keeps its truncated answers valid, since the cut comes from the budget chosen, not the model;",
        "at or above the paper budget they are invalid. metrics.json `scoring.truncation_policy` records",
        "the rule per suite; the markdown table shows the rate as ✂N% next to the score.",
        "",
        "Missing Delta: IAE is computed only over the suites where every method on the board has both Deltas",
        "(listed in `iae_suites`); when no suite qualifies both IAE columns are empty and such rows sort last.",
        "",
    ]
    return "\n".join(head + [f"- `{c}`: {d}" for c, d in schema()]) + "\n"


# ------------------------------------------------------------------------------------------ loading runs
def _is_score(x) -> bool:
    return isinstance(x, dict) and "value" in x


@dataclass
class RunMetrics:
    """One scored run directory: its metrics.json (checked) and manifest (rundir.Manifest)."""

    run_dir: Path
    metrics: dict
    manifest: Manifest  # rundir's typed manifest (version 0 directories upgraded in memory)
    likelihood: dict | None = None  # likelihood.json, when `ecliptica likelihood` wrote one

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def model(self) -> str:
        return self.manifest.model.name or ""

    @property
    def fingerprint(self) -> str:
        return self.manifest.model.fingerprint or ""

    @property
    def adapter(self) -> str:
        return self.manifest.adapter or ""

    @property
    def dataset_sha(self) -> str:
        return self.manifest.dataset_sha256 or ""

    @property
    def judge_id(self) -> str:
        return judge_id(self.metrics.get("judge"))

    @property
    def default_name(self) -> str:
        alias = _basename(self.model or "model")
        return f"{alias}+{_basename(self.adapter)}" if self.adapter else alias

    def suites(self) -> dict:
        return self.metrics["suites"]


def _basename(p: str) -> str:
    p = p.rstrip("/\\")
    return re.split(r"[/\\]", p)[-1] if p else p


def judge_id(judge) -> str:
    if not judge:
        return ""
    if isinstance(judge, dict):
        model = judge.get("model") or "?"
        ver = judge.get("template_version")
        return f"{model}@{ver}" if ver else str(model)
    return str(judge)


def _check_metrics(path: Path, m) -> None:
    problems: list[Problem] = []
    f = str(path)
    if not isinstance(m, dict):
        raise ValidationError([Problem(f, None, "metrics.json must be a JSON object")])
    if not isinstance(m.get("suites"), dict):
        problems.append(Problem(f, "suites", "missing or not an object"))
    else:
        for s, sd in m["suites"].items():
            if not isinstance(sd, dict) or not isinstance(sd.get("conditions"), dict):
                problems.append(Problem(f, f"suites.{s}", "needs a `conditions` object"))
                continue
            for c, cd in sd["conditions"].items():
                if c not in CONDITIONS:
                    problems.append(
                        Problem(f, f"suites.{s}.conditions.{c}", f"unknown condition (expected one of {', '.join(CONDITIONS)})")
                    )
                elif not isinstance(cd, dict) or not _is_score(cd.get("paper")):
                    problems.append(Problem(f, f"suites.{s}.conditions.{c}.paper", "missing or not a Score"))
            for key in ("delta", "delta_paper"):
                if sd.get(key) is not None and not _is_score(sd[key]):
                    problems.append(Problem(f, f"suites.{s}.{key}", "must be a Score or null"))
            if "delta_paper" not in sd or any(isinstance(cd, dict) and "headline" not in cd for cd in sd["conditions"].values()):
                problems.append(
                    Problem(
                        f,
                        f"suites.{s}",
                        "no `delta_paper` / `headline`: scored before signed "
                        f"Deltas; re-score with `ecliptica score {path.parent}`",
                    )
                )
    if problems:
        raise ValidationError(problems)


def load_run(run_dir: Path | str) -> RunMetrics:
    """A scored run directory through rundir: metrics.json (required unless likelihood.json stands in), checked
    here suite by suite, and manifest.json (required)."""
    run_dir = Path(run_dir)
    likelihood = read_likelihood(run_dir)
    if likelihood is None or (run_dir / METRICS).is_file():
        metrics = read_metrics(run_dir)
    else:
        metrics = {"suites": {}}  # a likelihood-only run
    _check_metrics(run_dir / METRICS, metrics)
    return RunMetrics(run_dir, metrics, read_manifest(run_dir), likelihood)


# ------------------------------------------------------------------------------------------ methods
@dataclass
class Method:
    """The runs behind one leaderboard row, merged per suite and condition."""

    name: str
    runs: list[RunMetrics]
    # suite -> condition -> (run, condition block)
    conditions: dict[str, dict[str, tuple[RunMetrics, dict]]] = field(default_factory=dict)
    # suite -> headline Delta Score, signed (or None)
    deltas: dict[str, dict | None] = field(default_factory=dict)
    # suite -> paper-compatible Delta Score (or None)
    deltas_paper: dict[str, dict | None] = field(default_factory=dict)
    # suite -> SE of the signed Delta (scoring.power; None for a run pair)
    delta_se: dict[str, float | None] = field(default_factory=dict)
    # suite -> the keyword detector's uncorrected headline Delta (metrics.json `delta`), and the detector
    # whose corrected Delta `deltas` holds ("" when `deltas` is the uncorrected one)
    deltas_raw: dict[str, dict | None] = field(default_factory=dict)
    delta_detector: dict[str, str] = field(default_factory=dict)
    seeds: int = 1  # sampling seeds averaged into this row

    def cond(self, suite: str, condition: str) -> dict | None:
        got = self.conditions.get(suite, {}).get(condition)
        return got[1] if got else None

    def delta_value(self, suite: str) -> float | None:
        return score_value(self.deltas.get(suite))

    def delta_paper_value(self, suite: str) -> float | None:
        return score_value(self.deltas_paper.get(suite))


def score_value(score) -> float | None:
    if not _is_score(score):
        return None
    v = score.get("value")
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def ci_half(score) -> float | None:
    if not _is_score(score) or score.get("ci_low") is None or score.get("ci_high") is None:
        return None
    return (float(score["ci_high"]) - float(score["ci_low"])) / 2.0


def _merge(name: str, runs: list[RunMetrics]) -> Method:
    parts = _seed_parts(runs)
    if parts:
        return _seed_merge(name, runs, [_merge(name, p) for p in parts])
    m = Method(name, runs)
    for run in runs:
        for suite, sd in run.suites().items():
            slot = m.conditions.setdefault(suite, {})
            for cond, block in sd["conditions"].items():
                if cond in slot:
                    other = slot[cond][0]
                    raise EclipticaError(
                        f"method {name!r}: suite {suite!r} condition {cond!r} is in both {other.run_dir} and "
                        f"{run.run_dir}; give them different --name values to list them as separate rows "
                        "(runs that differ only in their manifest's seeds.sampling average into one row)"
                    )
                slot[cond] = (run, block)
    for suite, slot in m.conditions.items():
        ins, unins = slot.get("instructed"), slot.get("uninstructed")
        if ins and unins and ins[0] is unins[0]:
            # Both conditions from one run: its own Deltas (with their bootstrap CIs) are authoritative.
            entry = ins[0].suites()[suite]
            m.deltas_raw[suite] = entry.get("delta")
            m.deltas_paper[suite] = entry.get("delta_paper")
            fixed = entry.get("delta_corrected")
            if score_value(fixed) is not None and entry.get("delta_corrected_detector"):
                m.deltas[suite], m.delta_detector[suite] = fixed, entry["delta_corrected_detector"]
                m.delta_se[suite] = power.delta_se({"delta": fixed})  # from its CI (it carries the detector's error)
            else:
                m.deltas[suite] = entry.get("delta")
                m.delta_se[suite] = power.delta_se(entry)
        elif ins and unins:
            a, b = ins[0], unins[0]
            if a.dataset_sha and b.dataset_sha and a.dataset_sha != b.dataset_sha:
                raise EclipticaError(
                    f"method {name!r}: suite {suite!r} pairs {a.run_dir} (dataset {a.dataset_sha[:12]}) with "
                    f"{b.run_dir} (dataset {b.dataset_sha[:12]}); a Delta needs the same dataset"
                )
            m.deltas_raw[suite] = m.deltas[suite] = _pair_delta(ins[1], unins[1], "headline")
            m.deltas_paper[suite] = _pair_delta(ins[1], unins[1], "paper")
            det = _pair_detector(a, b, suite)
            if det:
                fixed = _pair_delta(
                    _corrected_headline(a, suite, "instructed", det),
                    _corrected_headline(b, suite, "uninstructed", det),
                    "headline",
                )
                if score_value(fixed) is not None:
                    m.deltas[suite], m.delta_detector[suite] = fixed, det
        else:
            m.deltas[suite] = m.deltas_paper[suite] = m.deltas_raw[suite] = None
    return m


def _pair_detector(a: RunMetrics, b: RunMetrics, suite: str) -> str | None:
    """The detector both runs of a pair name best for the suite's headline (metrics.json detector_best), or None."""
    kind = SUITES[suite].paper.detector if suite in SUITES else None
    if kind is None:
        return None
    da, db = ((r.metrics.get("detector_best") or {}).get(kind) for r in (a, b))
    return da if da and da == db else None


def _corrected_headline(run: RunMetrics, suite: str, cond: str, detector: str) -> dict:
    """{"headline": the run's headline under `cond` from `detector`, corrected} (metrics.json detector_scores), for
    _pair_delta; the headline is a difference of rates, so the difference of two corrected ones is the corrected Delta."""
    head = ((run.suites()[suite].get("detector_scores") or {}).get("headline") or {}).get("conditions") or {}
    return {"headline": ((head.get(cond) or {}).get(detector) or {}).get("corrected")}


def run_seed(run: RunMetrics):
    """The run's sampling seed: manifest seeds.sampling (None when unknown)."""
    return run.manifest.sampling_seed


def _seed_parts(runs: list[RunMetrics]) -> list[list[RunMetrics]]:
    """The runs split by sampling seed when they are seed replicates: some suite and condition is in two
    runs, every run records its seed and there are two seeds or more; else [] (no seed axis)."""
    seen: set = set()
    overlap = False
    for run in runs:
        for suite, sd in run.suites().items():
            for cond in sd["conditions"]:
                overlap |= (suite, cond) in seen
                seen.add((suite, cond))
    seeds = [run_seed(r) for r in runs]
    if not overlap or None in seeds or len(set(map(str, seeds))) < 2:
        return []
    parts: dict[str, list[RunMetrics]] = {}
    for run, seed in zip(runs, seeds):
        parts.setdefault(str(seed), []).append(run)
    return list(parts.values())


def _mean_tree(items: list):
    """Seed average of metrics.json blocks: every Score becomes the mean of its values over the seeds (no
    CI; unscored when some seed left it unscored); anything else is taken from the first seed."""
    first = items[0]
    if _is_score(first):
        vals = [score_value(x) if _is_score(x) else None for x in items]
        if all(v is None for v in vals):
            return first
        if any(v is None for v in vals):
            return {**first, "value": None, "ci_low": None, "ci_high": None, "unscored_reason": "unscored in a seed run"}
        return {
            **first,
            "value": sum(vals) / len(vals),
            "ci_low": None,
            "ci_high": None,
            "unscored_reason": None,
            "ci_note": f"mean over {len(vals)} seeds",
        }
    if isinstance(first, dict):
        return {k: _mean_tree([x[k] for x in items if isinstance(x, dict) and k in x]) for k in first}
    return first


def _seed_merge(name: str, runs: list[RunMetrics], parts: list[Method]) -> Method:
    """One row from K seed replicates (each already merged): per-suite blocks averaged over the seeds, the
    Delta the mean of the seed Deltas with a CI that includes seed variance (scoring.power.seed_mean), the
    paper Delta the mean of the seed ones."""
    m = Method(name, runs, seeds=len(parts))
    for suite in dict.fromkeys(s for p in parts for s in p.conditions):
        for cond in CONDITIONS:
            got = [p.conditions[suite][cond] for p in parts if cond in p.conditions.get(suite, {})]
            if got:
                m.conditions.setdefault(suite, {})[cond] = (got[0][0], _mean_tree([b for _, b in got]))
        dets = {p.delta_detector.get(suite, "") for p in parts}
        if len(dets) > 1:
            raise EclipticaError(
                f"method {name!r}: the seed runs' {suite} Deltas are corrected with different detectors "
                f"({', '.join(sorted(d or 'none' for d in dets))}); re-score them with the same detectors"
            )
        vals = [p.delta_value(suite) for p in parts]
        pvals = [p.delta_paper_value(suite) for p in parts]
        if any(v is None for v in vals + pvals):
            m.deltas[suite] = m.deltas_paper[suite] = None
            continue
        agg = power.seed_mean(vals, [p.delta_se.get(suite) for p in parts])
        n = int((parts[0].deltas.get(suite) or {}).get("n") or 0)
        m.deltas[suite] = {
            "value": agg["value"],
            "ci_low": agg["ci_low"],
            "ci_high": agg["ci_high"],
            "n": n,
            "unscored_reason": None,
            "ci_note": f"mean over {len(parts)} seeds",
        }
        m.delta_se[suite] = agg["se"]
        m.delta_detector[suite] = dets.pop()
        raws = [score_value(p.deltas_raw.get(suite)) for p in parts]
        if all(v is not None for v in raws):
            m.deltas_raw[suite] = {
                "value": sum(raws) / len(raws),
                "ci_low": None,
                "ci_high": None,
                "n": n,
                "unscored_reason": None,
            }
        m.deltas_paper[suite] = {
            "value": sum(pvals) / len(pvals),
            "ci_low": None,
            "ci_high": None,
            "n": n,
            "unscored_reason": None,
        }
    return m


def _pair_delta(ins: dict, unins: dict, key: str) -> dict:
    """Delta of a run pair (instructed run, uninstructed run): the difference of the two values, no CI."""
    va, vb = score_value(ins.get(key)), score_value(unins.get(key))
    return {
        "value": None if va is None or vb is None else va - vb,
        "ci_low": None,
        "ci_high": None,
        "n": int((ins.get(key) or {}).get("n") or 0),
        "unscored_reason": None if va is not None and vb is not None else "a condition is unscored",
    }


def group_methods(runs: list[RunMetrics], names: dict[Path, str] | None = None) -> list[Method]:
    """Group runs into methods: by explicit name when given, else by (model_fingerprint, adapter)."""
    names = names or {}
    groups: dict[tuple, list[RunMetrics]] = {}
    explicit: dict[tuple, str] = {}
    for run in runs:
        given = names.get(run.run_dir.resolve())
        key = ("name", given) if given else ("model", run.fingerprint or run.model, run.adapter)
        groups.setdefault(key, []).append(run)
        if given:
            explicit[key] = given
    methods, seen = [], {}
    for key, group in groups.items():
        name = explicit.get(key) or group[0].default_name
        if name in seen and key not in explicit and seen[name] not in explicit:
            # Two unnamed models with the same alias (different weights): tell them apart by fingerprint.
            name = f"{name}@{(group[0].fingerprint or 'unknown')[:8]}"
        if name in seen:
            raise EclipticaError(f"two different methods are both named {name!r}; use --name RUN_DIR=NAME")
        seen[name] = key
        methods.append(_merge(name, group))
    return methods


# ------------------------------------------------------------------------------------------ IAE
def board_iae(methods: list[Method]) -> tuple[list[str], dict[str, dict]]:
    """IAE over the suites where every method has both Deltas: (suites used, ecliptica_bench.metrics.iae
    result: the paper IAE from the paper-compatible Deltas, the absolute IAE from the signed ones).

    A suite some method lacks a Delta for is left out for all methods (rather than giving that method the
    floor r = 0.1), so every IAE on one board averages the same suites; `iae_suites` lists them.
    """
    from ..metrics import iae

    known = list(SUITES) + sorted({s for m in methods for s in m.deltas} - set(SUITES))
    suites = [
        s for s in known if methods and all(m.delta_value(s) is not None and m.delta_paper_value(s) is not None for m in methods)
    ]
    if not suites:
        return [], {}
    return suites, iae(
        {m.name: {s: m.delta_paper_value(s) for s in suites} for m in methods},
        absolute_gains={m.name: {s: m.delta_value(s) for s in suites} for m in methods},
    )


REL_TITLE = "relative to the methods on this board (paper-compatible IAE)"
ABS_TITLE = "signed, on fixed per-suite scales (absolute IAE)"


def normalised_gains(df: pd.DataFrame) -> dict[str, pd.DataFrame | None]:
    """The per-suite normalised gains behind both IAEs, as {title: DataFrame methods x suites}, from the
    board's Deltas over its `iae_suites` (ecliptica_bench.metrics.iae, so plots and IAE always agree)."""
    from ..metrics import iae

    used = [s for s in (df["iae_suites"].iloc[0] if len(df) else "").split(";") if s]
    if not used:
        return {REL_TITLE: None, ABS_TITLE: None}
    deltas = {str(r["method"]): {s: float(r[f"{s}__delta"]) for s in used} for _, r in df.iterrows()}
    paper = {str(r["method"]): {s: float(r[f"{s}__delta_paper"]) for s in used} for _, r in df.iterrows()}
    res = iae(paper, absolute_gains=deltas)
    order = list(deltas)
    rel = pd.DataFrame({s: [res[m]["r"][s] for m in order] for s in used}, index=order)
    ab = pd.DataFrame({s: [res[m]["r_abs"].get(s, float("nan")) for m in order] for s in used}, index=order)
    return {REL_TITLE: rel, ABS_TITLE: ab}


# ------------------------------------------------------------------------------------------ the board
def _joined(values) -> str:
    return ";".join(sorted({v for v in values if v}))


def method_row(m: Method) -> dict:
    row = {
        "method": m.name,
        "model": _joined(r.model for r in m.runs),
        "model_fingerprint": _joined(r.fingerprint for r in m.runs),
        "adapter": _joined(r.adapter for r in m.runs),
        "seeds": m.seeds,
    }
    for s in SUITES:
        ins, unins = m.cond(s, "instructed"), m.cond(s, "uninstructed")
        paper = ins["paper"] if ins else None
        signals = (ins or {}).get("signals") or {}
        delta = m.deltas.get(s)
        row.update(
            {
                f"{s}__paper": score_value(paper),
                f"{s}__paper_ci_half": ci_half(paper),
                f"{s}__paper_valid": score_value((ins or {}).get("paper_valid")),
                f"{s}__paper_uninstructed": score_value(unins["paper"]) if unins else None,
                f"{s}__headline": score_value((ins or {}).get("headline")),
                f"{s}__delta": score_value(delta),
                f"{s}__delta_ci_half": ci_half(delta),
                f"{s}__delta_detector": m.delta_detector.get(s, ""),
                f"{s}__delta_raw": score_value(m.deltas_raw.get(s)),
                f"{s}__mdd": power.mdd(m.delta_se.get(s)),
                f"{s}__delta_paper": score_value(m.deltas_paper.get(s)),
                **{f"{s}__{sig}": score_value(signals.get(sig)) for sig in SIGNALS},
                f"{s}__n": int(paper.get("n") or 0) if paper else None,
            }
        )
    row.update(
        {
            "judge": _joined(r.judge_id for r in m.runs),
            "embedder": _joined(str(r.metrics.get("embedder") or "") for r in m.runs),
            "dataset_sha": _joined(r.dataset_sha for r in m.runs),
            "run_ids": _joined(r.run_id for r in m.runs),
        }
    )
    row.update(likelihood_row(m))
    return row


def likelihood_row(m: Method) -> dict:
    """The likelihood_* columns from the method's likelihood.json (one per method: several must agree)."""
    found = [r for r in m.runs if r.likelihood]
    if not found:
        return {}
    first = found[0].likelihood
    for r in found[1:]:
        if r.likelihood.get("overall") != first.get("overall"):
            raise EclipticaError(
                f"method {m.name!r}: {found[0].run_dir}/likelihood.json and {r.run_dir}/likelihood.json "
                "differ; keep one or give the runs different --name values"
            )
    o = first.get("overall") or {}
    row = {
        "likelihood_switched": score_value(o.get("switched")),
        "likelihood_switched_ci_half": ci_half(o.get("switched")),
        "likelihood_switched_per_token": score_value(o.get("switched_per_token")),
        "likelihood_margin_per_token": score_value(o.get("margin_per_token")),
        "likelihood_margin_per_token_ci_half": ci_half(o.get("margin_per_token")),
        "likelihood_pairs": o.get("pairs"),
    }
    per_kind = first.get("per_kind") or {}
    for axis in switching_axes():
        margin = (per_kind.get(axis) or {}).get("margin")
        row[f"likelihood__{axis}__margin"] = score_value(margin)
        row[f"likelihood__{axis}__margin_ci_half"] = ci_half(margin)
    return row


def build_leaderboard(run_dirs, names: dict | None = None) -> pd.DataFrame:
    """Scored run directories -> the leaderboard DataFrame (columns as in results/SCHEMA.md, sorted by IAE).

    `names` maps a run directory (str or Path) to a method name; runs sharing a name form one row.
    """
    return leaderboard_frame(load_methods(run_dirs, names))


def load_methods(run_dirs, names: dict | None = None) -> list[Method]:
    """Load and group the runs (the step before `leaderboard_frame`; the plots need the methods too)."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise EclipticaError("leaderboard: no run directories given")
    resolved = [d.resolve() for d in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise EclipticaError("leaderboard: a run directory is given twice")
    name_map = {}
    for d, n in (names or {}).items():
        rd = Path(d).resolve()
        if rd not in resolved:
            raise EclipticaError(f"--name {d}={n}: {d} is not one of the run directories given")
        name_map[rd] = n
    return group_methods([load_run(d) for d in run_dirs], name_map)


def leaderboard_frame(methods: list[Method], paired_tests: bool = True) -> pd.DataFrame:
    """The board of `methods`; `paired_tests` adds the adjacent-row tie tests (they read scores.parquet)."""
    used, iae = board_iae(methods)
    shas = {r.dataset_sha for m in methods for r in m.runs if r.dataset_sha}
    if len(shas) > 1:
        log.warning("the runs on this board used %d different datasets; Deltas may not be comparable", len(shas))
    rows = []
    for m in methods:
        row = method_row(m)
        res = iae.get(m.name) or {}
        row["iae_paper"] = res.get("relative")
        row["iae_abs"] = res.get("absolute")
        row["iae_suites"] = ";".join(used)
        rows.append(row)
    df = pd.DataFrame(rows)
    df = df.reindex(columns=list(df.columns) + [c for c in columns() if c not in df.columns])  # the missing ones empty
    df = df.sort_values(
        ["iae_paper", "iae_abs", "method"], ascending=[False, False, True], na_position="last", kind="mergesort"
    ).reset_index(drop=True)
    df["rank"] = range(1, len(df) + 1)
    df = df[columns()]
    # Numeric columns stay float even when all empty, so the CSV round-trips to the same dtypes.
    text = {"method", "model", "model_fingerprint", "adapter", "iae_suites", "judge", "embedder", "dataset_sha", "run_ids"}
    for c in df.columns:
        if c in text or c.endswith("__delta_detector"):
            df[c] = df[c].fillna("").astype(str)
        elif c == "rank" or c.endswith("__n") or c == "likelihood_pairs" or c == "seeds":
            df[c] = df[c].astype("Int64")
        else:
            df[c] = df[c].astype("float64")
    df = df.copy()  # one block per dtype (the column-by-column casts leave the frame fragmented)
    if paired_tests:
        mark_ties(df, {m.name: m for m in methods})
    return df


TIE_ALPHA = 0.05


def _test_run(m: Method, suite: str) -> RunMetrics | None:
    """The one run holding both conditions of `suite` for this row (None: seed-averaged row, run pair, no Delta)."""
    ins, unins = m.conditions.get(suite, {}).get("instructed"), m.conditions.get(suite, {}).get("uninstructed")
    if m.seeds != 1 or not ins or not unins or ins[0] is not unins[0] or m.delta_value(suite) is None:
        return None
    return ins[0]


def _paired(a: RunMetrics, b: RunMetrics) -> dict | None:
    """scoring.compare of two runs (None when they cannot be paired: no scores.parquet, different datasets
    or embedders, no shared cases)."""
    from ..scoring.compare import compare_runs

    why = None
    if not all((r.run_dir / "scores.parquet").is_file() for r in (a, b)):
        why = "no scores.parquet"
    elif a.dataset_sha and b.dataset_sha and a.dataset_sha != b.dataset_sha:
        why = "different datasets"
    elif a.metrics.get("embedder") != b.metrics.get("embedder"):
        why = "different embedders"
    if why is None:
        try:
            return compare_runs(a.run_dir, b.run_dir)
        except EclipticaError as exc:
            why = str(exc)
    log.warning("no paired test of %s vs %s: %s", a.run_dir, b.run_dir, why)
    return None


def mark_ties(df: pd.DataFrame, by_name: dict[str, Method]) -> None:
    """Fill `<suite>__p_next` / `<suite>__tied_with_next` in board order, in place: for each adjacent pair of
    rows and each suite, the paired bootstrap p-value of equal Deltas on shared cases (scoring.compare
    `delta_difference_p`), Holm-corrected over every pair and suite tested (scoring.power.holm)."""
    raw: dict[tuple[int, str], float] = {}
    cache: dict[tuple, dict | None] = {}
    for i in range(len(df) - 1):
        a, b = by_name[df.at[i, "method"]], by_name[df.at[i + 1, "method"]]
        for s in SUITES:
            ra, rb = _test_run(a, s), _test_run(b, s)
            if ra is None or rb is None:
                continue
            key = (ra.run_dir, rb.run_dir)
            if key not in cache:
                cache[key] = _paired(ra, rb)
            p = ((cache[key] or {}).get("suites", {}).get(s) or {}).get("delta_difference_p")
            if p is not None:
                raw[(i, s)] = p
    for (i, s), p in zip(raw, power.holm(list(raw.values()))):
        df.at[i, f"{s}__p_next"] = p
        df.at[i, f"{s}__tied_with_next"] = float(p >= TIE_ALPHA)
    mark_likelihood_ties(df, by_name)


def _likelihood_of(m: Method) -> dict | None:
    return next((r.likelihood for r in m.runs if r.likelihood), None)


def margin_difference_p(a: dict, b: dict, axis: str, n_boot: int | None = None, seed: int = 0) -> float | None:
    """Paired bootstrap p-value (scoring.power.bootstrap_p) of equal mean interaction margins on `axis`, from
    two likelihood.json results: the pairs both scored (pair_id), resampled together, each pair's `margin`
    as likelihood.py wrote it. None when the files carry no per-pair margins or share no pair."""
    from ..measures.stats import DEFAULT_BOOT, Bootstrap, difference, mean_statistic

    def margins(res: dict) -> dict:
        return {t["pair_id"]: t["margin"] for t in res.get("per_pair") or [] if t.get("kind") == axis and "margin" in t}

    ma, mb = margins(a), margins(b)
    keys = [k for k in ma if k in mb]
    if not keys:
        return None
    boot = Bootstrap(keys, n_boot or (a.get("bootstrap") or {}).get("n_boot") or DEFAULT_BOOT, seed)
    dd = difference(
        mean_statistic(keys, np.array([ma[k] for k in keys], dtype=float)),
        mean_statistic(keys, np.array([mb[k] for k in keys], dtype=float)),
    )
    return power.bootstrap_p(boot.distribution(dd)) if boot.n_boot > 0 else None


def mark_likelihood_ties(df: pd.DataFrame, by_name: dict[str, Method]) -> None:
    """Fill `likelihood__<axis>__p_next` / `__tied_with_next` in board order, in place, as mark_ties does for
    the suites: adjacent rows, paired bootstrap on shared held-out pairs, Holm over every pair and axis
    tested (a family apart from the suites', so adding likelihoods never moves a suite's tie mark)."""
    raw: dict[tuple[int, str], float] = {}
    for i in range(len(df) - 1):
        la, lb = _likelihood_of(by_name[df.at[i, "method"]]), _likelihood_of(by_name[df.at[i + 1, "method"]])
        if not la or not lb:
            continue
        for axis in switching_axes():
            p = margin_difference_p(la, lb, axis)
            if p is not None:
                raw[(i, axis)] = p
    for (i, axis), p in zip(raw, power.holm(list(raw.values()))):
        df.at[i, f"likelihood__{axis}__p_next"] = p
        df.at[i, f"likelihood__{axis}__tied_with_next"] = float(p >= TIE_ALPHA)


# ------------------------------------------------------------------------------------------ writing
def to_csv_text(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")  # full precision: values round-trip exactly


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "–"
    return f"{v:.{digits}f}"


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _differs(df: pd.DataFrame, s: str) -> bool:
    """Whether a suite's paper-compatible Delta differs from its signed one anywhere on the board."""
    a, b = df[f"{s}__delta"], df[f"{s}__delta_paper"]
    return bool(((a - b).abs() > 1e-12).any() or (a.isna() != b.isna()).any())


def _trunc(v) -> str:
    """A truncation rate as a compact suffix of the score cell ('' when none was cut or it is unknown)."""
    if v is None or pd.isna(v) or v <= 0:
        return ""
    return f" ✂{100 * v:.0f}%"


def to_markdown(df: pd.DataFrame) -> str:
    """A compact human table: both IAEs, then per suite the signed Delta (and the paper's where it differs)
    and the instructed score, each +- CI half-width, the score with its truncation rate where any answer
    was cut."""
    suites = [s for s in SUITES if df[f"{s}__paper"].notna().any() or df[f"{s}__delta"].notna().any()]
    head = ["rank", "method", "IAE (paper-compatible)", "IAE (abs, signed)"]
    for s in suites:
        head += [f"{s} Δ"] + ([f"{s} Δ paper"] if _differs(df, s) else []) + [f"{s} score"]
    lik = bool(df["likelihood_switched"].notna().any())  # `ecliptica likelihood` ran for some method
    axes = [a for a in switching_axes() if df[f"likelihood__{a}__margin"].notna().any()]
    head += (["likelihood switched"] if lik else []) + [f"{a} margin (nats)" for a in axes] + ["judge", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for _, r in df.iterrows():
        seeds = f" ({r['seeds']} seeds)" if not pd.isna(r["seeds"]) and r["seeds"] > 1 else ""
        cells = [str(r["rank"]), _md_escape(r["method"]) + seeds, _fmt(r["iae_paper"], 1), _fmt(r["iae_abs"], 1)]
        for s in suites:
            cols = (
                [("delta", "delta_ci_half")] + ([("delta_paper", None)] if _differs(df, s) else []) + [("paper", "paper_ci_half")]
            )
            for col, half in cols:
                v = r[f"{s}__{col}"]
                h = r[f"{s}__{half}"] if half else float("nan")
                cells.append(
                    _fmt(v)
                    + ("" if pd.isna(h) or pd.isna(v) else f" ± {_fmt(h)}")
                    + (_trunc(r[f"{s}__truncation_rate"]) if col == "paper" else "")
                    + (" =" if col == "delta" and r[f"{s}__tied_with_next"] == 1 else "")
                )
        if lik:
            v, h = r["likelihood_switched"], r["likelihood_switched_ci_half"]
            cells.append(_fmt(v) + ("" if pd.isna(h) or pd.isna(v) else f" ± {_fmt(h)}"))
        for a in axes:
            v, h = r[f"likelihood__{a}__margin"], r[f"likelihood__{a}__margin_ci_half"]
            cells.append(
                _fmt(v, 2)
                + ("" if pd.isna(h) or pd.isna(v) else f" ± {_fmt(h, 2)}")
                + (" =" if r[f"likelihood__{a}__tied_with_next"] == 1 else "")
            )
        cells += [_md_escape(r["judge"] or "none"), _md_escape(r["run_ids"])]
        lines.append("| " + " | ".join(cells) + " |")
    used = df["iae_suites"].iloc[0] if len(df) else ""
    notes = [
        "",
        f"IAE over: {used.replace(';', ', ') if used else 'no suite (no suite has a Delta for every method)'}. "
        "IAE (paper-compatible) is the published formula on the published Deltas, relative to the methods on this "
        "board; IAE (abs, signed) uses the signed Deltas on fixed per-suite scales (-100 to 100; switching the wrong "
        "way is negative).",
        "Δ = instructed − uninstructed headline score (signed; each suite's below); Δ paper = the paper-compatible "
        "gain where it differs; score = the paper-compatible instructed score; ± is the 95% CI half-width; "
        "✂N% = share of instructed answers cut at the token budget (they count as valid only when the run's "
        "budget is below the paper's). Column meanings: results/SCHEMA.md.",
        "Where a suite's headline is built from a detector (M2 hedging, M3 refusal), Δ is corrected for that "
        "detector's measured error (Rogan-Gladen, the best detector with validation figures: results/SCHEMA.md "
        "`<suite>__delta_detector`); Δ paper stays the paper's keyword detector, uncorrected.",
        "Δ … = : this row's Δ cannot be told apart from the next row's (paired bootstrap on the cases both runs "
        "share, Holm-corrected over all adjacent pairs and suites, p ≥ 0.05); (K seeds): the row averages K "
        "sampling seeds and its ± includes seed variance.",
        *(
            [
                "<axis> margin: held-out likelihood switching on that axis of the preference pairs (teacher-forced, "
                "no generation; 0 = the instruction changes nothing, > 0 = each instruction favours its own "
                "response), ± its 95% CI half-width, '=' as for Δ (its own Holm family).",
                likelihood_only_line(df),
            ]
            if axes
            else []
        ),
        "",
        *(f"- {s}: {SUITES[s].paper.label} ({suite_metric_name(s)}); Δ: {suite_headline_name(s)}" for s in suites),
    ]
    return "# ECLIPTICA leaderboard\n\n" + "\n".join(lines + notes) + "\n"


def _above_zero(v, half) -> bool:
    return not (pd.isna(v) or pd.isna(half)) and v - half > 0


def likelihood_only(df: pd.DataFrame) -> dict[str, list[str]]:
    """Per method: the switching axes that move in likelihood but not in generated text: the axis's margin CI
    lies above 0 while its suite's signed Δ CI does not (an axis without a Δ counts as not moving)."""
    out = {}
    for _, r in df.iterrows():
        moved = []
        for axis, (suite, _a, _b) in switching_axes().items():
            lik = _above_zero(r[f"likelihood__{axis}__margin"], r[f"likelihood__{axis}__margin_ci_half"])
            gen = _above_zero(r.get(f"{suite}__delta"), r.get(f"{suite}__delta_ci_half"))
            if lik and not gen:
                moved.append(f"{axis} ({suite} Δ {_fmt(r.get(f'{suite}__delta'), 2)})")
        out[str(r["method"])] = moved
    return out


def likelihood_only_line(df: pd.DataFrame) -> str:
    """One line: which axes move in likelihood (margin CI above 0) but not in generated text (Δ CI not above 0)."""
    found = {m: axes for m, axes in likelihood_only(df).items() if axes}
    if not found:
        return "Axes that move in likelihood but not in generated text: none."
    return (
        "Axes that move in likelihood (margin CI above 0) but not in generated text (Δ CI not above 0): "
        + "; ".join(f"{m}: {', '.join(a)}" for m, a in found.items())
        + "."
    )


def write_leaderboard(
    df: pd.DataFrame,
    csv: Path | None = None,
    markdown: Path | None = None,
    plots: Path | None = None,
    methods: list[Method] | None = None,
) -> list[Path]:
    """Write the CSV, the markdown table and the board plots; returns the paths written.

    The per-instruction-type chart needs the methods (from `load_methods`); without them it is skipped.
    """
    written = []
    if csv is not None:
        atomic_write_text(Path(csv), to_csv_text(df))
        written.append(Path(csv))
    if markdown is not None:
        atomic_write_text(Path(markdown), to_markdown(df))
        written.append(Path(markdown))
    if plots is not None:
        from .plots import board_plots

        written += board_plots(df, Path(plots), methods=methods)
    return written
