"""Statistical power: minimum detectable Deltas, paired-test p-values, Holm correction, sample-size plans
and the seed-level CI of a Delta averaged over seeds.

Notation: Delta is a run's signed headline gain, headline(instructed) - headline(uninstructed)
(metrics.json `delta`); z_q is the standard-normal quantile (z_0.975 = 1.95996, z_0.8 = 0.84162).

- SE of a run's Delta: the standard deviation (ddof=1) of the Delta over the clustered bootstrap's
  resamples of prompts (stats.Bootstrap; metrics.json `delta_se`). A run scored before `delta_se`
  existed falls back to the normal approximation SE = (ci_high - ci_low) / (2 z_0.975).
- Minimum detectable Delta (MDD), two-sided level alpha, power 1 - beta:
      MDD = (z_{1-alpha/2} + z_{1-beta}) * SE          (alpha = 0.05, power 0.8: MDD = 2.8016 SE)
  the true Delta a run of this size detects (its CI excludes 0) with probability `power`.
- Per-prompt SD of the Delta: sd_prompt = SE * sqrt(n_prompts) (SE shrinks as 1/sqrt(prompts)).
- Paired test of two runs' Deltas on their shared cases (scoring.compare: one bootstrap over the shared
  prompts moves both runs together): a two-sided percentile-bootstrap p-value of d = Delta_A - Delta_B,
      p = min(1, 2 * min((#{d* <= 0} + 1) / (B + 1), (#{d* >= 0} + 1) / (B + 1)))
  over the B finite resamples d* (identical runs give d* = 0 everywhere and p = 1; p < alpha exactly when
  0 lies outside the (1 - alpha) percentile interval, up to the +1 correction).
- Holm-Bonferroni (`holm`): implemented here (statsmodels is not a dependency); p-values sorted
  ascending p_(1) <= ... <= p_(m) get adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
- Seeds. Variance decomposition of a Delta estimated from n prompts and averaged over K seeds that share
  those prompts:  Var(mean Delta) = sd_prompt^2 / n + sd_seed^2 / K,  where sd_prompt^2 is the per-prompt
  variance (prompt sampling plus generation noise, not divided by K since the seeds share the prompts:
  conservative) and sd_seed^2 the between-seed variance of a run's Delta beyond that.
  `plan_prompts` solves (z_{1-alpha/2} + z_{power}) * sqrt(Var) <= D for n:
      n = ceil(sd_prompt^2 / ((D / (z_{1-alpha/2} + z_{power}))^2 - sd_seed^2 / K))
  which without seeds (sd_seed = 0) is n = ceil(((z_{1-alpha/2} + z_{power}) * sd_prompt / D)^2).
  `seed_mean` gives the CI of K seed runs' mean Delta: mean +- t_{0.975, df} * sqrt(W + B / K) with
  W = mean of the runs' SE^2 (the prompt-sampling variance; shared prompts, so not divided by K),
  B = sample variance (ddof=1) of the K Deltas, df by Welch-Satterthwaite with W's degrees of freedom
  taken as infinite: df = (W + B/K)^2 (K - 1) / (B/K)^2 (df infinite, i.e. z, when B = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Sequence

import numpy as np

from ..errors import EclipticaError
from ..rundir import METRICS, read_metrics
from ..suites import get_suite

ALPHA = 0.05
POWER = 0.8


def z(q: float) -> float:
    """Standard-normal quantile."""
    return NormalDist().inv_cdf(q)


def z_sum(alpha: float = ALPHA, power: float = POWER) -> float:
    """z_{1-alpha/2} + z_{power}: 2.8016 for alpha 0.05 two-sided and power 0.8."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise EclipticaError(f"alpha and power must lie strictly between 0 and 1 (got alpha {alpha}, power {power})")
    return z(1 - alpha / 2) + z(power)


def mdd(se: float | None, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Minimum detectable Delta: (z_{1-alpha/2} + z_{power}) * SE; None when SE is unknown."""
    if se is None or not math.isfinite(se):
        return None
    return z_sum(alpha, power) * float(se)


def se_from_ci(ci_low, ci_high, level: float = 0.95) -> float | None:
    """Normal-approximation SE from a (level) CI: (high - low) / (2 z_{(1+level)/2})."""
    if ci_low is None or ci_high is None:
        return None
    return (float(ci_high) - float(ci_low)) / (2 * z((1 + level) / 2))


def delta_se(entry: dict) -> float | None:
    """SE of a suite's Delta from its metrics.json entry: `delta_se`, else from the Delta's CI."""
    if entry.get("delta_se") is not None:
        return float(entry["delta_se"])
    d = entry.get("delta") or {}
    return se_from_ci(d.get("ci_low"), d.get("ci_high")) if d.get("value") is not None else None


def bootstrap_se(boot, stat) -> float | None:
    """SD (ddof=1) of `stat` over `boot`'s resamples (undefined resamples dropped); None without resamples."""
    if boot.n_boot < 2 or not stat.clusters:
        return None
    dist = boot.distribution(stat)
    dist = dist[np.isfinite(dist)]
    return float(np.std(dist, ddof=1)) if dist.size >= 2 else None


def bootstrap_p(dist: np.ndarray) -> float | None:
    """Two-sided percentile-bootstrap p-value of H0: statistic = 0 (formula in the module docstring)."""
    dist = np.asarray(dist, dtype=np.float64)
    dist = dist[np.isfinite(dist)]
    if dist.size == 0:
        return None
    b = dist.size
    lo = (np.count_nonzero(dist <= 0) + 1) / (b + 1)
    hi = (np.count_nonzero(dist >= 0) + 1) / (b + 1)
    return float(min(1.0, 2 * min(lo, hi)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="mergesort")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out.tolist()


# ------------------------------------------------------------------------------------------ seeds
def seed_mean(deltas: Sequence[float], ses: Sequence[float | None], level: float = 0.95) -> dict:
    """Mean of K seed runs' Deltas with a CI that includes seed variance (module docstring).

    Returns {value, se, ci_low, ci_high, df, within, between}; se / CI are None when a run's SE is unknown
    or K < 2."""
    from scipy.stats import t as t_dist

    d = np.asarray(deltas, dtype=np.float64)
    k = d.size
    out = {"value": float(d.mean()), "se": None, "ci_low": None, "ci_high": None, "df": None, "within": None, "between": None}
    if k < 2 or any(s is None for s in ses):
        return out
    w = float(np.mean(np.square(np.asarray(ses, dtype=np.float64))))
    b = float(np.var(d, ddof=1))
    var = w + b / k
    df = math.inf if b == 0 else var**2 * (k - 1) / (b / k) ** 2
    q = z((1 + level) / 2) if math.isinf(df) else float(t_dist.ppf((1 + level) / 2, df))
    se = math.sqrt(var)
    out.update(se=se, ci_low=out["value"] - q * se, ci_high=out["value"] + q * se, df=df, within=w, between=b)
    return out


# ------------------------------------------------------------------------------------------ plan
def plan_prompts(
    delta: float, sd_prompt: float, alpha: float = ALPHA, power: float = POWER, seeds: int | None = None, sd_seed: float = 0.0
) -> int | None:
    """Prompts needed to detect a Delta of `delta` (module docstring); None when K seeds' between-seed
    variance alone exceeds the variance budget (more seeds needed, whatever the prompts)."""
    if delta == 0 or not math.isfinite(delta):
        raise EclipticaError(f"--delta must be a non-zero number, got {delta}")
    budget = (abs(delta) / z_sum(alpha, power)) ** 2
    left = budget - (sd_seed**2 / seeds if seeds else 0.0)
    if left <= 0:
        return None
    return max(1, math.ceil(sd_prompt**2 / left - 1e-9))


def min_seeds(delta: float, sd_seed: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """The fewest seeds K with sd_seed^2 / K below the variance budget (D / z_sum)^2."""
    budget = (abs(delta) / z_sum(alpha, power)) ** 2
    return math.floor(sd_seed**2 / budget) + 1


@dataclass
class RunDelta:
    """What a plan needs from one scored run: its Delta, the Delta's SE and the number of prompts."""

    run_dir: Path
    delta: float
    se: float
    prompts: int

    @property
    def sd_prompt(self) -> float:
        return self.se * math.sqrt(self.prompts)


def run_delta(run_dir: Path, suite: str) -> RunDelta:
    """A suite's Delta, its SE and its prompt count from RUN_DIR/metrics.json (`delta_prompts`, else the
    distinct prompt_ids of the suite in scores.parquet)."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    metrics = read_metrics(run_dir)
    entry = metrics["suites"].get(suite)
    if not isinstance(entry, dict) or not isinstance(entry.get("delta"), dict) or entry["delta"].get("value") is None:
        raise EclipticaError(f"{path}: suites.{suite}.delta: no Delta (the run needs both conditions of {suite})")
    se = delta_se(entry)
    if se is None:
        raise EclipticaError(f"{path}: suites.{suite}: no delta_se and no CI (re-score with --bootstrap > 0)")
    prompts = entry.get("delta_prompts")
    if prompts is None:
        import pandas as pd

        scores = run_dir / "scores.parquet"
        if not scores.is_file():
            raise EclipticaError(f"{path}: suites.{suite}: no delta_prompts and no {scores} to count prompts")
        df = pd.read_parquet(scores, columns=["suite", "prompt_id"])
        prompts = int(df.loc[df["suite"] == suite, "prompt_id"].nunique())
    return RunDelta(run_dir, float(entry["delta"]["value"]), se, int(prompts))


def plan(
    suite: str,
    delta: float,
    runs: Sequence[Path] = (),
    seeds: int | None = None,
    sd_seed: float | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> dict:
    """How many prompts (and seeds) detect a Delta of `delta` on `suite`.

    sd_prompt: the mean per-prompt SD over the given runs, else the suite's documented default
    (Suite.plan_sd). sd_seed: given, else the SD (ddof=1) of the Deltas of two or more given runs (seed
    replicates of one model), else 0 (unknown: the answer then covers prompt sampling only)."""
    s = get_suite(suite)
    found = [run_delta(r, suite) for r in runs]
    if found:
        sd_prompt = float(np.mean([r.sd_prompt for r in found]))
        source = "from " + ", ".join(f"{r.run_dir} (Delta {r.delta:+.4g}, SE {r.se:.4g}, {r.prompts} prompts)" for r in found)
    elif s.plan_sd is not None:
        sd_prompt, source = float(s.plan_sd), f"default for {suite} (Suite.plan_sd; pass --from RUN_DIR for an estimate)"
    else:
        raise EclipticaError(f"suite {suite!r} has no default per-prompt SD; pass --from RUN_DIR")
    if sd_seed is None:
        sd_seed = float(np.std([r.delta for r in found], ddof=1)) if len(found) >= 2 else 0.0
        seed_source = "SD of the given runs' Deltas" if len(found) >= 2 else "unknown, taken as 0"
    else:
        seed_source = "given"
    n = plan_prompts(delta, sd_prompt, alpha, power, seeds, sd_seed)
    return {
        "suite": suite,
        "delta": delta,
        "alpha": alpha,
        "power": power,
        "seeds": seeds,
        "prompts": n,
        "sd_prompt": sd_prompt,
        "sd_prompt_source": source,
        "sd_seed": sd_seed,
        "sd_seed_source": seed_source,
        "z_sum": z_sum(alpha, power),
        "min_seeds": min_seeds(delta, sd_seed, alpha, power) if sd_seed > 0 else None,
    }


def format_plan(res: dict) -> str:
    k = res["seeds"]
    if res["prompts"] is None:
        head = (
            f"{res['suite']}: no number of prompts detects Delta {res['delta']:g} with {k} seed(s): the "
            f"between-seed variance alone is too large; use at least {res['min_seeds']} seeds"
        )
    else:
        head = (
            f"{res['suite']}: {res['prompts']} prompts"
            + (f" x {k} seeds" if k else "")
            + f" detect Delta {res['delta']:g} (two-sided alpha {res['alpha']:g}, power {res['power']:g})"
        )
    return "\n".join(
        [
            head,
            f"  per-prompt SD of Delta: {res['sd_prompt']:.4g} ({res['sd_prompt_source']})",
            f"  between-seed SD of Delta: {res['sd_seed']:.4g} ({res['sd_seed_source']})"
            + ("" if k else "; ignored without --seeds"),
            f"  n = ceil(sd_prompt^2 / ((D / {res['z_sum']:.4f})^2 - sd_seed^2 / K)); z_(1-alpha/2) + z_power = {res['z_sum']:.4f}",
        ]
    )
