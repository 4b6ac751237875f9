"""The clustered bootstrap (ecliptica_bench.measures.stats): values, CIs, clustering, pairing, speed."""

import time

import numpy as np
import pytest
from stats_helpers import clustered_bootstrap, contains_estimate, paired_difference, score_from_dict

from ecliptica_bench.measures.stats import (
    Bootstrap,
    Score,
    Statistic,
    cluster_sums,
    difference,
    mean_statistic,
)


def clustered_data(n_clusters=30, per=10, between=1.0, within=0.1, seed=0):
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, between, n_clusters)
    keys = np.repeat(np.arange(n_clusters), per)
    values = effect[keys] + rng.normal(0, within, n_clusters * per)
    return keys, values


def test_score_schema_and_unscored():
    s = Score(0.5, 0.4, 0.6, 10)
    assert s.to_dict() == {
        "value": 0.5,
        "ci_low": 0.4,
        "ci_high": 0.6,
        "n": 10,
        "unscored_reason": None,
        "nan_resamples": 0,
        "ci_note": None,
    }
    u = Score.unscored("no rows", 3).to_dict()
    assert u["value"] is None and u["unscored_reason"] == "no rows" and u["n"] == 3
    assert score_from_dict(s.to_dict()) == s
    assert Score.point(float("nan"), 2).value is None


def test_mean_and_ci_contains_estimate():
    keys, values = clustered_data()
    s = clustered_bootstrap(keys, values, n_boot=2000, seed=1)
    assert s.value == pytest.approx(values.mean())
    assert s.ci_low < s.value < s.ci_high
    assert s.n == len(values)


def test_clustering_widens_the_ci():
    """Rows of a cluster share a large effect: resampling rows (iid) understates the uncertainty."""
    keys, values = clustered_data(between=1.0, within=0.1)
    clustered = clustered_bootstrap(keys, values, n_boot=4000, seed=0)
    iid = clustered_bootstrap(np.arange(len(values)), values, n_boot=4000, seed=0)
    assert clustered.value == pytest.approx(iid.value)
    w_c, w_i = clustered.ci_high - clustered.ci_low, iid.ci_high - iid.ci_low
    # design effect with ICC ~ 0.99 and 10 rows per cluster: variance x ~10, width x ~3
    assert w_c > 2.5 * w_i


def test_ci_width_matches_theory_for_iid_mean():
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, 2000)
    s = clustered_bootstrap(np.arange(2000), values, n_boot=4000, seed=0)
    se = values.std() / np.sqrt(2000)
    assert (s.ci_high - s.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_deterministic_for_a_seed_and_different_across_seeds():
    keys, values = clustered_data()
    a = clustered_bootstrap(keys, values, n_boot=500, seed=7)
    b = clustered_bootstrap(keys, values, n_boot=500, seed=7)
    c = clustered_bootstrap(keys, values, n_boot=500, seed=8)
    assert a == b and a != c


def test_ratio_statistic_from_cluster_sums():
    # per-cluster sums [x, count]: ratio of sums, not mean of ratios
    keys = ["a", "a", "b", "c", "c", "c"]
    x = np.array([1.0, 3.0, 10.0, 0.0, 0.0, 2.0])
    clusters, s = cluster_sums(keys, np.column_stack([x, np.ones(6)]))
    assert clusters == ["a", "b", "c"]
    assert s.tolist() == [[4.0, 2.0], [10.0, 1.0], [2.0, 3.0]]
    stat = Statistic.sums(clusters, s, lambda t: t[:, 0] / t[:, 1], 6)
    assert stat.point() == pytest.approx(16 / 6)


def test_nan_rows_are_left_out_of_means():
    s = mean_statistic(["a", "a", "b"], np.array([1.0, np.nan, 3.0]))
    assert s.point() == pytest.approx(2.0) and s.n == 2
    assert Bootstrap(s.clusters, 100).score(mean_statistic(["a"], np.array([np.nan]))).value is None


def test_paired_difference_is_paired():
    keys, values = clustered_data(between=1.0, within=0.05)
    same = paired_difference(keys, values, keys, values, n_boot=1000)
    assert same.value == 0 and same.ci_low == 0 and same.ci_high == 0
    shifted = paired_difference(keys, values + 0.1, keys, values, n_boot=1000)
    assert shifted.value == pytest.approx(0.1)
    # the big cluster effects cancel in the pairing, so the CI is narrow around 0.1
    assert shifted.ci_high - shifted.ci_low < 0.01
    unpaired_a = clustered_bootstrap(keys, values, n_boot=1000)
    assert unpaired_a.ci_high - unpaired_a.ci_low > 0.3


def test_difference_over_union_of_clusters():
    a = mean_statistic(["p1", "p2"], np.array([1.0, 2.0]))
    b = mean_statistic(["p2", "p3"], np.array([0.0, 1.0]))
    d = difference(a, b)
    assert set(d.clusters) == {"p1", "p2", "p3"}
    assert d.point() == pytest.approx(1.5 - 0.5)
    assert Bootstrap(d.clusters, 300, seed=1).score(d).value == pytest.approx(1.0)


def test_statistic_on_a_bootstrap_with_more_clusters():
    boot = Bootstrap(["x", "y", "z"], 200, seed=0)
    s = mean_statistic(["z", "x"], np.array([1.0, 3.0]))
    assert boot.score(s).value == pytest.approx(2.0)
    with pytest.raises(ValueError):
        Bootstrap(["x"], 10).score(s)


def test_no_bootstrap_gives_point_only():
    s = clustered_bootstrap([1, 2, 3], np.array([1.0, 2.0, 3.0]), n_boot=0)
    assert s.value == 2.0 and s.ci_low is None and s.ci_high is None


def test_fast_3000_rows_10000_resamples():
    keys, values = clustered_data(n_clusters=300, per=10)
    t = time.process_time()
    s = clustered_bootstrap(keys, values, n_boot=10_000, seed=0)
    elapsed = time.process_time() - t
    assert s.ci_low < s.value < s.ci_high
    assert elapsed < 5.0, f"bootstrap took {elapsed:.2f} CPU s"
    # every row its own cluster: the worst case for the weight matrix
    t = time.process_time()
    clustered_bootstrap(np.arange(3000), values, n_boot=10_000, seed=0)
    assert time.process_time() - t < 15.0


# ------------------------------------------------------------------------------------------ containment
def test_abs_interval_derived_from_the_signed_one():
    """|d| at 0: percentiles of |d*| would start above 0 and exclude the estimate."""
    keys = np.arange(40)
    x = np.random.default_rng(0).normal(size=40)
    x -= x.mean()  # mean 0 (to rounding), resamples on both sides
    signed = mean_statistic(keys, x)
    boot = Bootstrap(keys, 1000, seed=0)
    sd = boot.score(signed)
    ab = boot.score(signed.absolute())
    assert ab.value == pytest.approx(0.0, abs=1e-12) and sd.ci_low < 0 < sd.ci_high
    assert ab.ci_low == 0.0 and ab.ci_high == pytest.approx(max(-sd.ci_low, sd.ci_high))
    assert "signed" in ab.ci_note
    # the naive percentile interval of |d*| is what used to be reported: it excludes 0
    naive_low = np.percentile(np.abs(boot.distribution(signed)), 2.5)
    assert naive_low > 0
    # away from 0 the derived interval is the mirrored signed one
    neg = mean_statistic(keys, x - 3.0)
    s_neg, a_neg = boot.score(neg), boot.score(neg.absolute())
    assert (a_neg.ci_low, a_neg.ci_high) == pytest.approx((-s_neg.ci_high, -s_neg.ci_low))


def test_interval_widened_to_its_estimate():
    """Share of distinct clusters in a resample: 1.0 for the data, about 1 - 1/e = 0.63 for every resample,
    so the percentile interval lies wholly below the estimate; it is widened to reach it, with a note."""
    clusters = list(range(50))
    stat = Statistic(clusters, lambda w: (w > 0).mean(axis=1), 50)
    boot = Bootstrap(clusters, 500, seed=2)
    raw_lo, raw_hi = np.percentile(boot.distribution(stat), [2.5, 97.5])
    assert raw_hi < 0.8 and raw_lo > 0.45
    sc = boot.score(stat)
    assert sc.value == 1.0 and sc.ci_low == pytest.approx(raw_lo) and sc.ci_high == 1.0
    assert "widened" in sc.ci_note and contains_estimate(sc)


def test_nan_resamples_are_counted():
    """Rows of condition A only in cluster 0: every resample without cluster 0 has no A row (NaN)."""
    keys = np.arange(10)
    a = np.zeros(10)
    a[0] = 1.0
    clusters, s = cluster_sums(keys, np.column_stack([a * 5.0, a]))
    stat = Statistic.sums(clusters, s, lambda t: t[:, 0] / t[:, 1], 10)
    boot = Bootstrap(clusters, 400, seed=0)
    expected = int((~np.isfinite(boot.distribution(stat))).sum())
    sc = boot.score(stat)
    # P(cluster 0 left out of a resample of 10) = 0.9 ** 10 = 0.35
    assert 0.25 * 400 < expected < 0.45 * 400
    assert sc.nan_resamples == expected and f"{expected} of 400 resamples" in sc.ci_note
    assert sc.value == 5.0 and sc.ci_low == sc.ci_high == 5.0


def test_no_ci_statistics_and_differences():
    keys = np.arange(20)
    stat = Statistic(keys, mean_statistic(keys, keys.astype(float)).from_weights, 20, no_ci="two-valued")
    boot = Bootstrap(keys, 100, seed=0)
    sc = boot.score(stat)
    assert sc.value == pytest.approx(9.5) and sc.ci_low is None and sc.ci_note == "no CI: two-valued"
    d = boot.score(difference(stat, mean_statistic(keys, np.zeros(20))))
    assert d.ci_low is None and d.ci_note == "no CI: two-valued"
    assert score_from_dict(sc.to_dict()) == sc
