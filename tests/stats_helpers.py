"""Test conveniences over ecliptica_bench.measures.stats (the package itself scores through Statistic and
Bootstrap; these shortcuts exist for the tests only)."""

from typing import Callable, Hashable, Sequence

import numpy as np

from ecliptica_bench.measures.stats import DEFAULT_BOOT, Bootstrap, Score, Statistic, cluster_sums, difference, mean_statistic


def clustered_bootstrap(
    keys: Sequence[Hashable],
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> Score:
    """Per-row `values` (n x k) summed per cluster, `statistic` of the totals (default: the mean of a single
    column, NaNs dropped), with a percentile CI."""
    if statistic is None:
        stat = mean_statistic(keys, values)
    else:
        clusters, s = cluster_sums(keys, values)
        stat = Statistic.sums(clusters, s, statistic, len(keys))
    return Bootstrap(stat.clusters, n_boot, seed, level).score(stat)


def paired_difference(keys_a, values_a, keys_b, values_b, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> Score:
    """mean(a) - mean(b), clustered: a prompt drawn into a resample brings its rows from both sides."""
    d = difference(mean_statistic(keys_a, values_a), mean_statistic(keys_b, values_b))
    return Bootstrap(d.clusters, n_boot, seed).score(d)


def contains_estimate(s: Score) -> bool:
    """True when there is no interval, or the interval holds the point estimate."""
    if s.value is None or s.ci_low is None or s.ci_high is None:
        return True
    return s.ci_low <= s.value <= s.ci_high


def score_from_dict(d: dict) -> Score:
    return Score(
        d.get("value"),
        d.get("ci_low"),
        d.get("ci_high"),
        int(d.get("n") or 0),
        d.get("unscored_reason"),
        int(d.get("nan_resamples") or 0),
        d.get("ci_note"),
    )
