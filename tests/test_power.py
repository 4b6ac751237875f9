"""Power on the leaderboard: MDD, Holm, ties between adjacent rows, `ecliptica plan`, seeds as an axis.

Expected values are computed by hand in the comments; z_0.975 = 1.959964, z_0.8 = 0.841621, so
z_0.975 + z_0.8 = 2.801585.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ecliptica_bench.cli import cli
from ecliptica_bench.measures.stats import Bootstrap, difference, mean_statistic
from ecliptica_bench.report.leaderboard import build_leaderboard, to_markdown
from ecliptica_bench.scoring import power

Z_SUM = 2.801585

HEDGE, PLAIN = "I am not sure, but it might be Paris.", "It is Paris."


def test_z_sum():
    assert power.z_sum() == pytest.approx(Z_SUM, abs=1e-6)
    assert power.mdd(0.05) == pytest.approx(0.05 * Z_SUM, abs=1e-7)
    assert power.mdd(None) is None


def test_mdd_of_a_tiny_run_from_known_per_prompt_deltas():
    # 4 prompts, one instructed and one uninstructed row each; per-prompt Deltas 0.1, 0.3, 0.5, 0.7.
    # The Delta is their mean 0.4; the bootstrap variance of a mean of n clusters is the population
    # variance / n: ((0.3^2 + 0.1^2 + 0.1^2 + 0.3^2) / 4) / 4 = 0.05 / 4 = 0.0125, SE = 0.111803,
    # MDD = 2.801585 * 0.111803 = 0.313227.
    keys = ["p0", "p1", "p2", "p3"]
    ins = np.array([0.6, 0.8, 0.5, 0.9])
    unins = ins - np.array([0.1, 0.3, 0.5, 0.7])
    d = difference(mean_statistic(keys, ins), mean_statistic(keys, unins))
    boot = Bootstrap(keys, n_boot=40_000, seed=3)
    assert d.point() == pytest.approx(0.4)
    se = power.bootstrap_se(boot, d)
    assert se == pytest.approx(0.111803, rel=0.02)
    assert power.mdd(se) == pytest.approx(0.313227, rel=0.02)


def test_se_falls_back_to_the_ci_width():
    # no delta_se: SE = (0.3 - 0.1) / (2 * 1.959964) = 0.051021
    assert power.delta_se({"delta": {"value": 0.2, "ci_low": 0.1, "ci_high": 0.3}}) == pytest.approx(0.051021, abs=1e-6)
    assert power.delta_se({"delta": {"value": 0.2, "ci_low": 0.1, "ci_high": 0.3}, "delta_se": 0.04}) == 0.04
    assert power.delta_se({"delta": {"value": None}}) is None


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert power.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.5 x 2 = 1.0, then max(1.0, 0.6) = 1.0; clipped at 1
    assert power.holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    assert power.holm([0.7]) == pytest.approx([0.7])


def test_bootstrap_p():
    assert power.bootstrap_p(np.zeros(99)) == 1.0  # identical runs
    assert power.bootstrap_p(np.ones(99)) == pytest.approx(2 / 100)  # every resample > 0
    # 30 of 99 below 0, 69 above: 2 * (30 + 1) / 100 = 0.62
    assert power.bootstrap_p(np.r_[-np.ones(30), np.ones(69)]) == pytest.approx(0.62)


def test_plan_by_hand():
    # n = ceil((2.801585 * 0.5 / 0.1)^2) = ceil(196.22) = 197
    assert power.plan_prompts(0.1, 0.5) == 197
    # with K = 4 seeds of between-seed SD 0.1: budget (0.1 / 2.801585)^2 = 0.00127406, minus 0.01 / 4 < 0
    assert power.plan_prompts(0.1, 0.5, seeds=4, sd_seed=0.1) is None
    assert power.min_seeds(0.1, 0.1) == 8  # 0.01 / 0.00127406 = 7.85 -> 8
    # K = 10, sd_seed 0.05: 0.00127406 - 0.0025 / 10 = 0.00102406; n = ceil(0.25 / 0.00102406) = ceil(244.13) = 245
    assert power.plan_prompts(0.1, 0.5, seeds=10, sd_seed=0.05) == 245
    # alpha 0.01, power 0.9: z = 2.575829 + 1.281552 = 3.857381; n = ceil((3.857381 * 0.5 / 0.1)^2) = ceil(371.98) = 372
    assert power.plan_prompts(0.1, 0.5, alpha=0.01, power=0.9) == 372


def test_seed_mean_by_hand():
    # Deltas 0.2, 0.3: mean 0.25; W = (0.02^2 + 0.04^2) / 2 = 0.001; B = 0.005; var = 0.001 + 0.0025 = 0.0035
    # se = 0.059161; df = 0.0035^2 * 1 / 0.0025^2 = 1.96
    agg = power.seed_mean([0.2, 0.3], [0.02, 0.04])
    assert agg["value"] == pytest.approx(0.25)
    assert agg["se"] == pytest.approx(0.059161, abs=1e-6)
    assert agg["df"] == pytest.approx(1.96)
    from scipy.stats import t

    half = t.ppf(0.975, 1.96) * 0.059161
    assert agg["ci_high"] - agg["value"] == pytest.approx(half, rel=1e-4)
    # no between-seed spread: z interval, se = sqrt(W)
    same = power.seed_mean([0.2, 0.2], [0.03, 0.03])
    assert same["se"] == pytest.approx(0.03) and same["ci_high"] == pytest.approx(0.2 + 1.959964 * 0.03, abs=1e-6)


# ------------------------------------------------------------------------------------------ run fixtures
def truthful_run(
    root: Path,
    run_id: str,
    *,
    hedge_honest: bool,
    delta: float,
    delta_se: float | None = 0.05,
    seed: int | None = None,
    fingerprint: str = "fp-a",
    model: str = "m",
    prompts: int = 12,
) -> Path:
    """A scored truthfulqa run: instructed HONEST answers hedge when `hedge_honest`, nothing else hedges,
    so the headline Delta is 1.0 or 0.0 on the scores; metrics.json carries `delta` as given."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    rows = []
    for p in range(prompts):
        for t in ("honest", "confident"):
            for cond in ("instructed", "uninstructed"):
                hedge = hedge_honest and t == "honest" and cond == "instructed"
                rows.append(
                    {
                        "suite": "truthfulqa",
                        "case_id": f"truthfulqa/q{p}/{t}",
                        "prompt_id": p,
                        "condition": cond,
                        "instruction_type": t,
                        "prompt": f"Question {p}?",
                        "response": HEDGE if hedge else PLAIN,
                        "fidelity": float("nan"),
                        "valid": True,
                    }
                )
    pd.DataFrame(rows).to_parquet(run_dir / "scores.parquet", index=False)

    def score(v):
        return {"value": v, "ci_low": v - 0.1, "ci_high": v + 0.1, "n": 2 * prompts, "unscored_reason": None}

    block = {"paper": score(0.5), "headline": score(0.5), "signals": {}}
    metrics = {
        "run_id": run_id,
        "model": model,
        "model_fingerprint": fingerprint,
        "adapter": None,
        "dataset_sha": "d" * 64,
        "judge": None,
        "embedder": "all-MiniLM-L6-v2",
        "bootstrap": 200,
        "suites": {
            "truthfulqa": {
                "metric": "epistemic_switching",
                "headline_metric": "epistemic_switching",
                "conditions": {"instructed": block, "uninstructed": block},
                "delta": score(delta),
                "delta_paper": score(delta),
                "delta_se": delta_se,
                "delta_prompts": prompts,
            }
        },
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    manifest = {"run_id": run_id, "model": {"name": model, "fingerprint": fingerprint}, "dataset_sha256": "d" * 64}
    if seed is not None:
        manifest["seeds"] = {"sampling": seed}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def test_leaderboard_mdd_column(tmp_path):
    a = truthful_run(tmp_path, "a", hedge_honest=True, delta=1.0, delta_se=0.05)
    b = truthful_run(tmp_path, "b", hedge_honest=True, delta=0.4, delta_se=None, fingerprint="fp-b", model="n")
    df = build_leaderboard([a, b]).set_index("method")
    assert df.loc["m", "truthfulqa__mdd"] == pytest.approx(0.05 * Z_SUM, abs=1e-6)
    # b has no delta_se: SE from its CI [0.3, 0.5]: 0.2 / 3.919928 = 0.051021, MDD = 0.142938
    assert df.loc["n", "truthfulqa__mdd"] == pytest.approx(0.142938, abs=1e-5)
    assert (df["seeds"] == 1).all()


def test_identical_runs_are_tied_different_runs_are_not(tmp_path):
    a = truthful_run(tmp_path, "a", hedge_honest=True, delta=1.0)
    b = truthful_run(tmp_path, "b", hedge_honest=True, delta=1.0, fingerprint="fp-b", model="n")
    c = truthful_run(tmp_path, "c", hedge_honest=False, delta=0.0, fingerprint="fp-c", model="o")
    df = build_leaderboard([a, b, c])
    assert list(df["method"]) == ["m", "n", "o"]  # equal IAE: by name; c last
    # m vs n: the same scores, every resampled difference is 0, p = 1 -> tied
    assert df.loc[0, "truthfulqa__p_next"] == pytest.approx(1.0)
    assert df.loc[0, "truthfulqa__tied_with_next"] == 1.0
    # n vs o: Delta 1 vs 0 on every prompt: every resample > 0, raw p = 2 / 10001, Holm over 2 tests x2
    assert df.loc[1, "truthfulqa__p_next"] == pytest.approx(2 * 2 / 10001)
    assert df.loc[1, "truthfulqa__tied_with_next"] == 0.0
    assert pd.isna(df.loc[2, "truthfulqa__tied_with_next"])  # last row: nothing below it
    md = to_markdown(df)
    row_m = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    row_n = next(line for line in md.splitlines() if line.startswith("| 2 |"))
    assert " =" in row_m and " =" not in row_n


def test_two_seed_runs_give_one_row(tmp_path):
    s1 = truthful_run(tmp_path, "s1", hedge_honest=True, delta=0.2, delta_se=0.02, seed=1)
    s2 = truthful_run(tmp_path, "s2", hedge_honest=True, delta=0.3, delta_se=0.04, seed=2)
    other = truthful_run(tmp_path, "o", hedge_honest=False, delta=0.0, fingerprint="fp-b", model="n")
    df = build_leaderboard([s1, s2, other]).set_index("method")
    assert len(df) == 2
    row = df.loc["m"]
    assert row["seeds"] == 2
    assert row["truthfulqa__delta"] == pytest.approx(0.25)  # (0.2 + 0.3) / 2
    assert row["truthfulqa__delta_paper"] == pytest.approx(0.25)
    assert row["truthfulqa__mdd"] == pytest.approx(0.059161 * Z_SUM, abs=1e-5)  # se from test_seed_mean_by_hand
    assert row["run_ids"] == "s1;s2"
    assert pd.isna(row["truthfulqa__tied_with_next"])  # seed rows are not paired-tested
    assert "(2 seeds)" in to_markdown(build_leaderboard([s1, s2]))


def test_same_seed_overlap_still_asks_for_names(tmp_path):
    from ecliptica_bench.errors import EclipticaError

    s1 = truthful_run(tmp_path, "s1", hedge_honest=True, delta=0.2, seed=1)
    s2 = truthful_run(tmp_path, "s2", hedge_honest=True, delta=0.3, seed=1)
    with pytest.raises(EclipticaError, match="--name"):
        build_leaderboard([s1, s2])


def test_plan_cli(tmp_path):
    run = truthful_run(tmp_path, "a", hedge_honest=True, delta=1.0, delta_se=0.05, prompts=25)
    # sd_prompt = 0.05 * sqrt(25) = 0.25; n = ceil((2.801585 * 0.25 / 0.1)^2) = ceil(49.05) = 50
    res = CliRunner().invoke(cli, ["plan", "--delta", "0.1", "--suite", "truthfulqa", "--from", str(run)])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].startswith("truthfulqa: 50 prompts detect Delta 0.1")
    assert "0.25" in res.output
    # the suite default (Suite.plan_sd = 0.6): ceil((2.801585 * 0.6 / 0.1)^2) = ceil(282.56) = 283
    res = CliRunner().invoke(cli, ["plan", "--delta", "0.1", "--suite", "truthfulqa"])
    assert "283 prompts" in res.output
    # two seed runs: sd_seed = SD(1.0, 0.4) = 0.424264; K = 2: 0.18 / 2 = 0.09 > budget -> more seeds
    s2 = truthful_run(tmp_path, "b", hedge_honest=True, delta=0.4, delta_se=0.05, prompts=25, seed=2)
    res = CliRunner().invoke(
        cli, ["plan", "--delta", "0.1", "--suite", "truthfulqa", "--from", str(run), "--from", str(s2), "--seeds", "2"]
    )
    assert res.exit_code == 0 and "no number of prompts" in res.output and "at least 142 seeds" in res.output
    assert math.floor(0.18 / (0.1 / Z_SUM) ** 2) + 1 == 142
