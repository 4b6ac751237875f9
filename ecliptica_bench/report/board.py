"""One self-contained HTML page for several methods side by side (the demo's base / DPO / CITA).

It holds the leaderboard, the paired comparisons with their CIs, what training did to each adapter
(steps, drift from the base model, held-out preference accuracy), the board's plots, and for every suite
sample responses to the same prompt under its two contrasting instructions, one row per method, so a
reader sees what "switching" looks like. Model text is escaped by Jinja2's autoescape.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..data.io import atomic_write_text
from ..rundir import METRICS, read_generations, read_metrics
from ..suites import SUITES
from .html import _data_uri, _env

SAMPLE_PROMPTS = 2


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def board_table(df: pd.DataFrame) -> dict:
    """Per method: both IAEs and, per suite, the signed Delta with its CI half-width, the share of instructed
    answers cut at the token budget and the valid rate."""
    from .leaderboard import likelihood_only_line, switching_axes

    suites = [s for s in SUITES if f"{s}__delta" in df.columns]
    axes = [a for a in switching_axes() if f"likelihood__{a}__margin" in df and df[f"likelihood__{a}__margin"].notna().any()]
    cols = ["method", "IAE (paper-compatible)", "IAE (abs, signed)"] + [f"{s} Δ" for s in suites]
    cols += [f"{a} likelihood margin (nats)" for a in axes]
    rows = []
    for _, r in df.iterrows():
        cells = [str(r["method"]), _fmt(r.get("iae_paper"), 1), _fmt(r.get("iae_abs"), 1)]
        for s in suites:
            d, half = r.get(f"{s}__delta"), r.get(f"{s}__delta_ci_half")
            text = _fmt(d) + (f" ± {_fmt(half)}" if _fmt(half) else "")
            extra = [
                f"{label} {v:.0%}"
                for label, v in (("cut", r.get(f"{s}__truncation_rate")), ("valid", r.get(f"{s}__valid_rate")))
                if isinstance(v, float) and math.isfinite(v)
            ]
            tie = " =" if r.get(f"{s}__tied_with_next") == 1 else ""
            cells.append(text + tie + (f" ({', '.join(extra)})" if extra else ""))
        for a in axes:
            v, half = r.get(f"likelihood__{a}__margin"), r.get(f"likelihood__{a}__margin_ci_half")
            tie = " =" if r.get(f"likelihood__{a}__tied_with_next") == 1 else ""
            cells.append(_fmt(v, 2) + (f" ± {_fmt(half, 2)}" if _fmt(half) else "") + tie)
        rows.append(cells)
    return {"columns": cols, "rows": rows, "note": likelihood_only_line(df) if axes else ""}


def _score_text(sc: dict | None) -> str:
    if not sc:
        return ""
    v = sc.get("value")
    if v is None:
        return f"unscored ({sc.get('unscored_reason') or 'n/a'})"
    lo, hi = sc.get("ci_low"), sc.get("ci_high")
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    excl = ""
    if lo is not None and hi is not None:
        excl = "  (CI excludes 0)" if lo > 0 or hi < 0 else ""
    return f"{v:+.3f}{ci}{excl}"


def comparison_rows(compares: dict) -> list[dict]:
    rows = []
    for label, res in compares.items():
        for suite, e in res.get("suites", {}).items():
            conds = e.get("conditions", {})
            rows.append(
                {
                    "comparison": label,
                    "suite": suite,
                    "metric": e.get("metric", ""),
                    "delta": _score_text(e.get("delta_difference")),
                    "instructed": _score_text((conds.get("instructed") or {}).get("headline")),
                    "uninstructed": _score_text((conds.get("uninstructed") or {}).get("headline")),
                }
            )
    return rows


def training_rows(train_summaries: dict) -> list[dict]:
    rows = []
    for method, s in train_summaries.items():
        pe = s.get("pref_eval") or {}
        acc = {w: (pe.get(w) or {}).get("overall", {}).get("accuracy_logp_per_token") for w in ("before", "after")}
        drift = s.get("kl_to_reference") or {}
        per_kind = ((s.get("heldout_accuracy") or {}).get("after") or {}).get("accuracy_logp_per_token") or {}
        rows.append(
            {
                "method": method,
                "steps": s.get("global_step"),
                "s_per_step": _fmt(s.get("seconds_per_step"), 2),
                "kl_final": _fmt(drift.get("final"), 4),
                "kl_mean": _fmt(drift.get("mean"), 4),
                "acc_before": _fmt(acc["before"]),
                "acc_after": _fmt(acc["after"]),
                "per_kind": ", ".join(f"{k} {_fmt(v, 2)}" for k, v in per_kind.items() if k != "overall"),
                "reused": "yes" if s.get("reused") else "no",
            }
        )
    return rows


def run_side_effects(run_dirs: dict[str, Path]) -> dict[str, dict]:
    """Per method: {suite: side_effects block} from its metrics.json (read once for the rows and the notes)."""
    out = {}
    for m, d in run_dirs.items():
        suites = read_metrics(d)["suites"] if (Path(d) / METRICS).is_file() else {}
        out[m] = {suite: sd.get("side_effects") for suite, sd in suites.items()}
    return out


def side_effect_rows(side: dict[str, dict]) -> list[dict]:
    """Per method: the untargeted side effects whose 95% CI excludes 0 (diagnostics.significant)."""
    from ..scoring.diagnostics import significant

    return [
        {"method": m, "suite": suite, "type": r["type"], "attribute": r["attribute"], "change": _score_text(r)}
        for m, per_suite in side.items()
        for suite, block in per_suite.items()
        for r in significant(block)
        if r["targeted"] is False
    ]


def side_effect_notes(side: dict[str, dict]) -> list[str]:
    """Per method: how many untargeted intervals exclude 0 against how many would by chance (diagnostics.chance_note)."""
    from ..scoring.diagnostics import chance_note

    notes = ((m, chance_note(per_suite)) for m, per_suite in side.items())
    return [f"{m}: {note}" for m, note in notes if note]


def contrast_samples(run_dirs: dict[str, Path], n_prompts: int = SAMPLE_PROMPTS) -> list[dict]:
    """Per suite: for the first prompts, each method's responses under the suite's two contrasting types."""
    gens = {m: read_generations(d) for m, d in run_dirs.items()}
    out = []
    for name, suite in SUITES.items():
        types = suite.contrast_types()
        frames = {m: g[(g.suite == name) & (g.condition == "instructed")] for m, g in gens.items()}
        first = next(iter(frames.values()))
        if first.empty:
            continue
        prompts = list(dict.fromkeys(first.sort_values("prompt_id").prompt_id))[:n_prompts]
        items = []
        for pid in prompts:
            p = first[first.prompt_id == pid]
            by_type = {t: p[p.instruction_type == t] for t in types}
            item = {
                "prompt": p.prompt.iloc[0],
                "types": list(types),
                "instructions": [by_type[t].instruction.iloc[0] if len(by_type[t]) else "" for t in types],
                "methods": [],
            }
            for m, f in frames.items():
                q = f[f.prompt_id == pid].set_index("instruction_type")
                cells = []
                for t in types:
                    if t in q.index:
                        r = q.loc[t]
                        cells.append(
                            {"text": r.response, "words": len(str(r.response).split()), "cut": r.finish_reason == "length"}
                        )
                    else:
                        cells.append({"text": "(not run)", "words": 0, "cut": False})
                item["methods"].append({"method": m, "cells": cells})
            items.append(item)
        out.append({"suite": name, "types": list(types), "cases": items})
    return out


def write_board_report(path: Path, run_dirs: dict[str, Path], df: pd.DataFrame, compares: dict, train_summaries: dict) -> Path:
    path = Path(path)
    side = run_side_effects(run_dirs)
    plots = [{"name": p.stem.replace("_", " "), "uri": _data_uri(p.read_bytes())} for p in sorted(path.parent.glob("*.png"))]
    html = (
        _env()
        .get_template("board.html.j2")
        .render(
            methods=list(run_dirs),
            board=board_table(df),
            comparisons=comparison_rows(compares),
            training=training_rows(train_summaries),
            plots=plots,
            side_effects=side_effect_rows(side),
            side_effect_notes=side_effect_notes(side),
            samples=contrast_samples(run_dirs),
            runs=[(m, str(d)) for m, d in run_dirs.items()],
        )
    )
    atomic_write_text(path, html)
    return path
