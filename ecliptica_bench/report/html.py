"""`ecliptica report RUN_DIR`: one self-contained HTML page for a scored run.

The page holds the run's manifest (secrets redacted), every metric with its CI, the plots (PNG as
base64 data URIs) and a browsable sample of responses per suite and instruction type with their validity
flags and judge verdicts, read from scores.parquet. Model text is escaped by Jinja2's autoescape; nothing
is loaded from outside the file.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader

from ..data.io import atomic_write_text
from ..errors import EclipticaError
from ..rundir import GENERATION_COLUMNS, GENERATIONS, HASH_COLUMNS, SCORES, extra_columns, read_generations, read_scores
from .leaderboard import CONDITIONS, judge_id, load_run, suite_order, suite_order_items

TEMPLATES = Path(__file__).parent / "templates"
REPORT = "report.html"
DEFAULT_SAMPLES = 3

# Keys whose values are never shown (the *_env keys hold only the *name* of a variable, which is fine).
_SECRET_KEY = re.compile(r"api_?key|token|secret|password|passwd|authorization|credential|cookie", re.I)
_ENV_KEY = re.compile(r"^(env|environ|environment_variables)$", re.I)
_SECRET_VALUE = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|"
    r"Bearer\s+[A-Za-z0-9._-]{16,})"
)
REDACTED = "[redacted]"


def redact(obj, key: str = ""):
    """A copy of a JSON-like object with secret-looking keys and values replaced by '[redacted]'."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            ks = str(k)
            if _ENV_KEY.match(ks):
                out[k] = REDACTED
            elif _SECRET_KEY.search(ks) and not ks.lower().endswith("_env") and v not in (None, "", False):
                out[k] = REDACTED
            else:
                out[k] = redact(v, ks)
        return out
    if isinstance(obj, list):
        return [redact(v, key) for v in obj]
    if isinstance(obj, str):
        return _SECRET_VALUE.sub(REDACTED, obj)
    return obj


# ------------------------------------------------------------------------------------------ formatting
def _num(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def fmt_score(sc) -> dict:
    """A Score as display parts: value, CI text, n, and the unscored reason (or, for a scored value, how
    its CI was made when not a plain percentile interval)."""
    if not isinstance(sc, dict):
        return {"value": "–", "ci": "", "n": "", "reason": "not reported", "scored": False}
    v = sc.get("value")
    lo, hi = sc.get("ci_low"), sc.get("ci_high")
    return {
        "value": _num(v) if v is not None else "unscored",
        "ci": f"[{_num(lo)}, {_num(hi)}]" if lo is not None and hi is not None else "",
        "n": sc.get("n", ""),
        "reason": sc.get("unscored_reason") or sc.get("ci_note") or "",
        "scored": v is not None,
    }


def _metric_rows(block: dict) -> list[tuple[str, str]]:
    """(group, name) of every Score in a condition block, in display order."""
    rows = [("headline", "paper"), ("headline", "paper_valid"), ("headline", "headline"), ("headline", "headline_valid")]
    for group in ("components", "signals"):
        rows += [(group, name) for name in (block.get(group) or {})]
    return rows


def _get(block: dict | None, group: str, name: str):
    if block is None:
        return None
    return block.get(name) if group == "headline" else (block.get(group) or {}).get(name)


def suite_tables(metrics: dict) -> list[dict]:
    """Per suite: every metric with CI side by side for the conditions, and the per-type tables."""
    out = []
    for suite, sd in suite_order_items(metrics["suites"]):
        conds = [c for c in CONDITIONS if c in sd["conditions"]]
        names: list[tuple[str, str]] = []
        for c in conds:
            for r in _metric_rows(sd["conditions"][c]):
                if r not in names:
                    names.append(r)
        rows = [{"group": g, "name": n, "cells": [fmt_score(_get(sd["conditions"][c], g, n)) for c in conds]} for g, n in names]
        per_type = []
        for c in conds:
            pt = sd["conditions"][c].get("per_instruction_type") or {}
            mnames = list(dict.fromkeys(n for scores in pt.values() for n in (scores or {})))
            if pt:
                per_type.append(
                    {
                        "condition": c,
                        "metrics": mnames,
                        "rows": [
                            {"type": t, "cells": [fmt_score((scores or {}).get(n)) for n in mnames]} for t, scores in pt.items()
                        ],
                    }
                )
        out.append(
            {
                "suite": suite,
                "metric": sd.get("metric", ""),
                "headline_metric": sd.get("headline_metric", ""),
                "conditions": conds,
                "rows": rows,
                "delta": fmt_score(sd.get("delta")) if sd.get("delta") else None,
                "delta_paper": fmt_score(sd.get("delta_paper")) if sd.get("delta_paper") else None,
                "per_type": per_type,
            }
        )
    return out


def headline_rows(metrics: dict) -> list[dict]:
    out = []
    policy = (metrics.get("scoring") or {}).get("truncation_policy") or {}
    for suite, sd in suite_order_items(metrics["suites"]):
        ins = sd["conditions"].get("instructed") or {}
        sig = ins.get("signals") or {}
        out.append(
            {
                "suite": suite,
                "metric": sd.get("metric", ""),
                "instructed": fmt_score(ins.get("paper")) if ins else None,
                "uninstructed": fmt_score(sd["conditions"]["uninstructed"]["paper"])
                if "uninstructed" in sd["conditions"]
                else None,
                "delta": fmt_score(sd.get("delta")) if sd.get("delta") else None,
                "delta_paper": fmt_score(sd.get("delta_paper")) if sd.get("delta_paper") else None,
                "headline_metric": sd.get("headline_metric", ""),
                "valid_rate": fmt_score(sig.get("valid_rate")) if sig.get("valid_rate") else None,
                # the truncation rate, with the rule that decided whether those answers count as valid
                "truncation_rate": {**fmt_score(sig["truncation_rate"]), "reason": policy.get(suite, "")}
                if sig.get("truncation_rate")
                else None,
                "identifiability": fmt_score(sig.get("identifiability")) if sig.get("identifiability") else None,
                "judge_adherence": fmt_score(sig.get("judge_adherence")) if sig.get("judge_adherence") else None,
            }
        )
    return out


# ------------------------------------------------------------------------------------------ samples
def _base_columns() -> set[str]:
    return set(GENERATION_COLUMNS) | set(HASH_COLUMNS) | set(extra_columns())


def _cell(v):
    """A parquet value as short display text (None for missing)."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    elif isinstance(v, np.generic):
        v = v.item()
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


FLAG_NAMES = ("is_empty", "is_looping", "is_off_topic", "is_truncated", "is_echo")


def _flags(row: dict, bool_cols: list[str]) -> tuple[bool | None, list[str]]:
    """(valid, names of raised flags) from whatever validity columns the scores carry."""
    raised = [c for c in bool_cols if c.startswith("is_") and row.get(c) is True]
    valid = row.get("valid", row.get("is_valid"))
    if valid is pd.NA or (isinstance(valid, float) and math.isnan(valid)):
        valid = None
    if valid is None and any(c in row for c in FLAG_NAMES):
        valid = not raised
    return (None if valid is None else bool(valid)), [c.removeprefix("is_").replace("_", " ") for c in raised]


def samples(run_dir: Path, per_type: int = DEFAULT_SAMPLES) -> tuple[list[dict], str | None]:
    """Up to `per_type` cases per suite and instruction type (first by case_id), both conditions side by
    side, with flags, per-row scores and judge columns. Returns (suites, note)."""
    note = None
    if (run_dir / SCORES).is_file():
        df = read_scores(run_dir)
    elif (run_dir / GENERATIONS).is_file():
        df = read_generations(run_dir)
        note = "scores.parquet is missing: responses are shown from generations.parquet, without flags or verdicts"
    else:
        return [], "no scores.parquet or generations.parquet in the run directory: no samples to show"
    base = _base_columns()
    extra = [c for c in df.columns if c not in base]
    # Judge columns exist (all null) even when no judge ran: only those with a value are shown.
    judge_cols = [c for c in extra if c.lower().startswith("judge") and df[c].notna().any()]
    extra = [c for c in extra if not c.lower().startswith("judge") or c in judge_cols]
    bool_cols = [c for c in extra if c not in judge_cols and str(df[c].dtype) in ("bool", "boolean")]
    value_cols = [c for c in extra if c not in judge_cols and c not in bool_cols]
    out = []
    groups = dict(list(df.groupby("suite", sort=False)))
    for suite in suite_order(groups):
        sdf = groups[suite]
        types = []
        for itype, tdf in sdf.groupby("instruction_type", sort=False):
            case_ids = sorted(tdf["case_id"].unique())
            cases = []
            for cid in case_ids[:per_type]:
                cdf = tdf[tdf["case_id"] == cid]
                first = cdf.iloc[0].to_dict()
                conds = []
                for cond in CONDITIONS:
                    hit = cdf[cdf["condition"] == cond]
                    if hit.empty:
                        continue
                    r = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in hit.iloc[0].to_dict().items()}
                    valid, raised = _flags(r, bool_cols)
                    conds.append(
                        {
                            "condition": cond,
                            "response": "" if r.get("response") is None else str(r["response"]),
                            "finish_reason": _cell(r.get("finish_reason")),
                            "completion_tokens": _cell(r.get("completion_tokens")),
                            "valid": valid,
                            "flags": raised,
                            "row_scores": [(c, _cell(r.get(c))) for c in bool_cols + value_cols if _cell(r.get(c)) is not None],
                            "judge": [(c, _cell(r.get(c))) for c in judge_cols if _cell(r.get(c)) is not None],
                        }
                    )
                cases.append(
                    {
                        "case_id": cid,
                        "prompt": str(first.get("prompt") or ""),
                        "instruction": str(first.get("instruction") or ""),
                        "expected": _cell(first.get("expected_characteristics")),
                        "conditions": conds,
                    }
                )
            types.append({"type": itype, "n_cases": len(case_ids), "cases": cases})
        out.append({"suite": suite, "types": types})
    if not judge_cols and note is None:
        note = "no judge verdicts in scores.parquet (no judge ran)"
    return out, note


# ------------------------------------------------------------------------------------------ plots
def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def report_plots(run) -> list[dict]:
    """The plots for one run, as data URIs with captions."""
    from .leaderboard import group_methods, leaderboard_frame
    from .plots import conditions_figure, heatmap_figure, per_type_figure, png_bytes, radar_figure, switch_matrix_figure

    metrics = run.metrics
    plots = [
        {
            "title": "Headline score by condition",
            "src": _data_uri(png_bytes(conditions_figure(metrics))),
            "caption": "Each suite's paper-compatible score with and without the alignment instruction; "
            "the gain Δ is the difference.",
        }
    ]
    methods = group_methods([run])
    df = leaderboard_frame(methods)
    from .leaderboard import ABS_TITLE, normalised_gains

    absolute = {ABS_TITLE: normalised_gains(df)[ABS_TITLE]}
    if any(g is not None and g.notna().any().any() for g in absolute.values()):
        plots.append(
            {
                "title": "Normalised gains",
                "src": _data_uri(png_bytes(radar_figure(absolute))),
                "narrow": True,
                "caption": "Δ per suite on the fixed per-suite scales of the absolute IAE "
                "(the paper's relative radar needs several methods: see `ecliptica leaderboard`).",
            }
        )
    plots.append(
        {
            "title": "Scores",
            "src": _data_uri(png_bytes(heatmap_figure(df))),
            "caption": "Instructed score and gain Δ per suite, with 95% CI half-widths.",
        }
    )
    for suite, sd in suite_order_items(metrics["suites"]):
        series = [(c, sd["conditions"][c].get("per_instruction_type") or {}) for c in CONDITIONS if c in sd["conditions"]]
        if any(pt for _, pt in series):
            plots.append(
                {
                    "title": f"{suite}: per instruction type",
                    "src": _data_uri(png_bytes(per_type_figure(suite, series))),
                    "caption": "Per-instruction-type metric by condition, with 95% CIs.",
                }
            )
    for suite, sd in suite_order_items(metrics["suites"]):
        panels = [(c, sd["conditions"][c].get("switch_matrix")) for c in CONDITIONS if c in sd["conditions"]]
        if any(sm and any(r is not None for r in sm["matrix"]) for _, sm in panels):
            plots.append(
                {
                    "title": f"{suite}: switch matrix",
                    "src": _data_uri(png_bytes(switch_matrix_figure(panels, f"{suite}: switch matrix"))),
                    "caption": "Row = instruction given, column = instruction recovered from the response "
                    "alone (out-of-fold identifiability classifier), P(recovered | given); a pair "
                    "is collapsed when (P(b|a) + P(a|b)) / 2 >= 0.25.",
                }
            )
    return plots


def side_effect_rows(metrics: dict) -> list[dict]:
    """Per suite, the side effects whose 95% CI excludes 0 (scoring/diagnostics.py), untargeted first."""
    from ..scoring.diagnostics import significant

    return [
        {"suite": suite, "type": r["type"], "attribute": r["attribute"], "score": fmt_score(r), "targeted": r["targeted"]}
        for suite, sd in suite_order_items(metrics["suites"])
        for r in significant(sd.get("side_effects"))
    ]


def side_effect_note(metrics: dict) -> str | None:
    """How many untargeted intervals exclude 0 against how many would by chance (diagnostics.chance_note)."""
    from ..scoring.diagnostics import chance_note

    return chance_note({suite: sd.get("side_effects") for suite, sd in metrics["suites"].items()})


JUDGE_DISAGREEMENTS = 50  # most judge-vs-detector disagreements listed in the report


def judge_scores(metrics: dict) -> list[dict]:
    """Per suite and condition: the paper metric beside the judge-based one (scoring/panel.py)."""
    out = []
    for suite, sd in suite_order_items(metrics["suites"]):
        for cond in CONDITIONS:
            b = (sd.get("conditions") or {}).get(cond) or {}
            j = b.get("judge")
            if not j:
                continue
            extra = [
                (k.replace("_", " "), fmt_score(j[k]))
                for k in ("detector_disagreement_rate", "identifiability", "identifiability_chance", "order_agreement")
                if k in j
            ]
            out.append(
                {
                    "suite": suite,
                    "condition": cond,
                    "paper_metric": sd.get("metric"),
                    "paper": fmt_score(b.get("paper")),
                    "judge_metric": j.get("metric"),
                    "judge": fmt_score(j.get("score")),
                    "extra": extra,
                }
            )
    return out


def judge_panel_rows(metrics: dict) -> list[dict]:
    """Per suite: each judge's parse-failure rate and the inter-judge agreement per label."""
    panel = metrics.get("judge_panel") or {}
    rows = []
    for suite, e in (panel.get("suites") or {}).items():
        agree = ", ".join(
            f"{lab} {a['value']:.2f}" for lab, a in (e.get("agreement") or {}).items() if a.get("value") is not None
        )
        fails = ", ".join(f"{j} {100 * r:.0f}%" for j, r in (e.get("parse_failure_rate") or {}).items() if r is not None)
        stat = next((a["statistic"] for a in (e.get("agreement") or {}).values() if a.get("statistic")), None)
        rows.append(
            {
                "suite": suite,
                "version": e.get("template_version"),
                "parse_failures": fails,
                "agreement": f"{stat}: {agree}" if stat and agree else "–",
            }
        )
    return rows


def judge_disagreements(run_dir: Path, limit: int = JUDGE_DISAGREEMENTS) -> tuple[list[dict], int]:
    """Cases where the judge's majority verdict and the keyword detector (has_hedge, is_refusal) disagree:
    (the first `limit` by suite and case id, how many in all)."""
    if not (run_dir / SCORES).is_file():
        return [], 0
    df = read_scores(run_dir)
    if "judge_detector_disagree" not in df.columns:
        return [], 0
    hit = df[df["judge_detector_disagree"] == 1.0].sort_values(["suite", "case_id", "condition"])
    rows = [
        {
            "suite": r["suite"],
            "case_id": r["case_id"],
            "condition": r["condition"],
            "verdict": r.get("judge_verdict") or "",
            "hedge": bool(r.get("has_hedge")),
            "refusal": bool(r.get("is_refusal")),
            "response": str(r.get("response") or "")[:300],
        }
        for r in hit.head(limit).to_dict("records")
    ]
    return rows, len(hit)


# ------------------------------------------------------------------------------------------ the page
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env


def render_report(run_dir: Path | str, samples_per_type: int = DEFAULT_SAMPLES) -> str:
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    metrics = run.metrics
    sample_suites, sample_note = samples(run_dir, samples_per_type)
    manifest = redact(run.manifest.to_json())
    info = [
        ("run id", run.run_id),
        ("model", run.model),
        ("model fingerprint", run.fingerprint),
        ("adapter", run.adapter or "none (base model)"),
        ("dataset sha", run.dataset_sha),
        ("judge", judge_id(metrics.get("judge")) or "none"),
        ("embedder", str(metrics.get("embedder") or "")),
        ("bootstrap resamples", str(metrics.get("bootstrap", ""))),
        ("status", run.manifest.status or ""),
    ]
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            run_id=run.run_id,
            info=[(k, redact(v)) for k, v in info if v not in (None, "")],
            headline=headline_rows(metrics),
            suites=suite_tables(metrics),
            side_effects=side_effect_rows(metrics),
            side_effect_note=side_effect_note(metrics),
            judge_scores=judge_scores(metrics),
            judge_panel=judge_panel_rows(metrics),
            judge_disagreements=judge_disagreements(run_dir),
            plots=report_plots(run),
            samples=sample_suites,
            sample_note=sample_note,
            samples_per_type=samples_per_type,
            manifest_json=json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str) if manifest else None,
            metrics_json=json.dumps(redact(metrics), indent=2, sort_keys=True, ensure_ascii=False, default=str),
        )
    )


def write_report(run_dir: Path | str, samples_per_type: int = DEFAULT_SAMPLES) -> Path:
    """Write RUN_DIR/report.html (self-contained) and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EclipticaError(f"{run_dir}: not a run directory")
    if samples_per_type < 0:
        raise EclipticaError(f"--samples must be >= 0 (got {samples_per_type})")
    html = render_report(run_dir, samples_per_type)
    out = run_dir / REPORT
    atomic_write_text(out, html)
    return out
