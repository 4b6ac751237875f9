"""`ecliptica compare RUN_A RUN_B`: paired differences between two scored runs on the same cases.

Both runs must come from the same built dataset (manifest.json `dataset_sha256`, as rundir reads it):
runs of different datasets are refused. For each suite and condition both runs have, the
rows are restricted to the case_ids both runs share, and A - B is bootstrapped with prompts as clusters
(a prompt drawn into a resample brings its rows from both runs), for the paper metric, the headline
metric (signed / fixed-scale: the suite's PaperMetric.headline_name), the valid rate and (when both have them)
identifiability and judge adherence. When both runs have both conditions, the difference of their deltas
is reported too: `delta_difference` of the signed deltas, `delta_paper_difference` of the paper ones,
each with a paired two-sided bootstrap p-value of no difference (`delta_difference_p`,
`delta_paper_difference_p`; scoring.power.bootstrap_p), which the leaderboard uses to mark ties.
Per condition, `switch_matrix_change` holds both runs' switch matrices on the shared cases and their
difference B - A (scoring/diagnostics.py). Embeddings come from each run's store (the same embedder must
have scored both; no model calls when the runs were scored before).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..chat import CONDITIONS, INSTRUCTED, UNINSTRUCTED
from ..data.io import write_json
from ..errors import EclipticaError
from ..measures import paper
from ..measures.stats import DEFAULT_BOOT, Bootstrap, Score, difference, mean_statistic
from ..rundir import Manifest, read_run, read_scores
from ..store import RunStore
from ..suites import get_suite
from .diagnostics import switch_matrix_change
from .embed import Embedder
from .power import bootstrap_p
from .score import _finite, _types, cluster_keys, format_score, scored_rows


def _load(run_dir: Path):
    """(scores DataFrame, metrics, Manifest) of a scored run, through rundir (metrics.json, then scores.parquet)."""
    run = read_run(run_dir, generations=False, metrics=True)
    return read_scores(run_dir), run.metrics, run.manifest


def dataset_sha(manifest: Manifest) -> str | None:
    """The sha of the built dataset a run used (manifest dataset_sha256; rundir folds the older spellings in)."""
    return manifest.dataset_sha256


def _stats(suite, sub, keys, E):
    try:
        return get_suite(suite).paper.compute(scored_rows(suite, sub, keys, E, sub["fidelity"].to_numpy(dtype=float)))
    except paper.MissingType:
        return None


def compare_runs(run_a: Path, run_b: Path, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> dict:
    da, ma, man_a = _load(run_a)
    db, mb, man_b = _load(run_b)
    sha_a, sha_b = dataset_sha(man_a), dataset_sha(man_b)
    if sha_a and sha_b and sha_a != sha_b:
        raise EclipticaError(
            f"{run_b}: built from dataset {sha_b[:12]}, {run_a} from dataset {sha_a[:12]} "
            "(manifest.json dataset_sha256): paired differences need the same cases; "
            "run both models on one built dataset"
        )
    if ma.get("embedder") != mb.get("embedder"):
        raise EclipticaError(
            f"{run_b}: scored with embedder {mb.get('embedder')!r}, {run_a} with {ma.get('embedder')!r}; "
            "re-score one of them with the other's --embedder"
        )
    path = (ma.get("scoring") or {}).get("embedder_path")
    out = {
        "run_a": ma.get("run_id"),
        "run_b": mb.get("run_id"),
        "model_a": ma.get("model"),
        "model_b": mb.get("model"),
        "bootstrap": n_boot,
        "seed": seed,
        "suites": {},
    }
    stores = [RunStore(Path(run_a)), RunStore(Path(run_b))]
    try:
        embs = [Embedder(path, s) for s in stores]
        for suite in [s for s in dict.fromkeys(da["suite"]) if s in set(db["suite"])]:
            sa, sb = da[da["suite"] == suite], db[db["suite"] == suite]
            entry = {
                "metric": get_suite(suite).paper.name,
                "headline_metric": get_suite(suite).paper.headline_name,
                "conditions": {},
                "delta_difference": None,
                "delta_paper_difference": None,
                "delta_difference_p": None,
                "delta_paper_difference_p": None,
            }
            per_cond = {}
            boot = Bootstrap(list(dict.fromkeys(cluster_keys(sa))), n_boot, seed)
            for cond in CONDITIONS:
                a = sa[sa["condition"] == cond].set_index("case_id")
                b = sb[sb["condition"] == cond].set_index("case_id")
                common = [c for c in a.index if c in set(b.index)]
                if not common:
                    continue
                a, b = a.loc[common].reset_index(), b.loc[common].reset_index()
                ka = kb = cluster_keys(a)  # pair on A's prompt keys: same cases, so the same prompts
                need_emb = get_suite(suite).paper.embeddings
                Ea = embs[0].encode(a["response"].tolist()) if need_emb else None
                Eb = embs[1].encode(b["response"].tolist()) if need_emb else None
                sa_, sb_ = _stats(suite, a, ka, Ea), _stats(suite, b, kb, Eb)
                res = {"cases": len(common)}
                for name in ("paper", "headline"):
                    pa = getattr(sa_, name) if sa_ is not None else None
                    pb = getattr(sb_, name) if sb_ is not None else None
                    res[name] = (
                        boot.score(difference(pa, pb))
                        if pa is not None and pb is not None
                        else Score.unscored(f"{name} metric unscored in a run", len(common))
                    ).to_dict()
                    res[f"{name}_a"] = boot.score(pa).to_dict() if pa is not None else None
                    res[f"{name}_b"] = boot.score(pb).to_dict() if pb is not None else None
                for name, col in (
                    ("valid_rate", "valid"),
                    ("identifiability", "ident_correct"),
                    ("judge_adherence", "judge_adherence"),
                ):
                    if col not in a or col not in b:
                        continue
                    va, vb = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
                    if np.isfinite(va).any() and np.isfinite(vb).any():
                        res[name] = boot.score(difference(mean_statistic(ka, va), mean_statistic(kb, vb))).to_dict()
                if "ident_pred" in a and "ident_pred" in b:  # diagnostics: both switch matrices and B - A
                    res["switch_matrix_change"] = switch_matrix_change(
                        a["instruction_type"], a["ident_pred"], b["instruction_type"], b["ident_pred"], list(_types(suite))
                    )
                entry["conditions"][cond] = res
                per_cond[cond] = (sa_, sb_)
            if all(c in per_cond and None not in per_cond[c] for c in CONDITIONS):
                (ia, ib), (ua, ub) = per_cond[INSTRUCTED], per_cond[UNINSTRUCTED]
                for key, name in (("delta_difference", "headline"), ("delta_paper_difference", "paper")):
                    g = lambda st: getattr(st, name)  # noqa: E731
                    dd = difference(difference(g(ia), g(ua)), difference(g(ib), g(ub)))
                    entry[key] = boot.score(dd).to_dict()
                    # paired percentile-bootstrap p-value of H0: equal Deltas (scoring.power.bootstrap_p)
                    entry[f"{key}_p"] = bootstrap_p(boot.distribution(dd)) if boot.n_boot > 0 and not dd.no_ci else None
            if entry["conditions"]:
                out["suites"][suite] = entry
    finally:
        for s in stores:
            s.close()
    if not out["suites"]:
        raise EclipticaError(f"{run_a} and {run_b} share no scored cases")
    out["embedding_calls"] = sum(e.calls for e in embs)
    return _finite(out)


def format_compare(res: dict) -> str:
    head = f"{'suite':<19} {'condition':<13} {'cases':>5}  {'A - B paper [95% CI]':<30} {'A':>8} {'B':>8}  {'valid% A-B':>10}"
    lines = [
        f"A = {res['run_a']}   B = {res['run_b']}   (bootstrap {res['bootstrap']}, clustered by prompt)",
        head,
        "-" * len(head),
    ]
    for suite, e in res["suites"].items():
        for cond, r in e["conditions"].items():
            va = r.get("valid_rate", {}).get("value")
            pa = (r.get("paper_a") or {}).get("value")
            pb = (r.get("paper_b") or {}).get("value")
            lines.append(
                f"{suite:<19} {cond:<13} {r['cases']:>5}  {format_score(r['paper']):<30} "
                f"{'-' if pa is None else f'{pa:.3f}':>8} {'-' if pb is None else f'{pb:.3f}':>8}  "
                f"{'-' if va is None else f'{100 * va:+.1f}':>10}"
            )
            if e.get("headline_metric") and e["headline_metric"] != e.get("metric") and r.get("headline"):
                ha = (r.get("headline_a") or {}).get("value")
                hb = (r.get("headline_b") or {}).get("value")
                lines.append(
                    f"{'':<19} {e['headline_metric'][:13]:<13} {'':>5}  {format_score(r['headline']):<30} "
                    f"{'-' if ha is None else f'{ha:.3f}':>8} {'-' if hb is None else f'{hb:.3f}':>8}"
                )
        if e.get("delta_difference"):
            pv = e.get("delta_difference_p")
            lines.append(
                f"{suite:<19} {'delta A-B':<13} {'':>5}  {format_score(e['delta_difference']):<30}"
                + ("" if pv is None else f" paired bootstrap p = {pv:.4g}")
            )
        dp = e.get("delta_paper_difference")
        if dp and e.get("headline_metric") != e.get("metric"):
            lines.append(f"{suite:<19} {'paper dA-B':<13} {'':>5}  {format_score(dp):<30}")
    return "\n".join(lines)


def write_compare(res: dict, out: Path) -> None:
    write_json(Path(out), res)
