"""Rates corrected for detector error (ecliptica_bench.measures.correction): hand-computed values, the floor,
reproducible draws, and the coverage of the corrected CI on a simulated detector of known error rates."""

import numpy as np
import pytest

from ecliptica_bench.measures.correction import (
    DIFFERENCE,
    J_FLOOR,
    Corrected,
    ErrorCounts,
    corrected,
    corrected_difference,
    rogan_gladen,
)
from ecliptica_bench.measures.stats import Bootstrap, difference, mean_statistic

# sensitivity 0.8 (80 of 100 positives flagged), specificity 0.95 (95 of 100 negatives not flagged)
COUNTS = ErrorCounts(tp=80, fn=20, tn=95, fp=5, source="hand")


def rates(q_a=0.30, q_b=0.10, n=100):
    """Two groups of n rows (one row per cluster), observed flag rates exactly q_a and q_b."""
    a = np.zeros(n)
    a[: round(q_a * n)] = 1
    b = np.zeros(n)
    b[: round(q_b * n)] = 1
    return mean_statistic([f"a{i}" for i in range(n)], a), mean_statistic([f"b{i}" for i in range(n)], b)


def test_hand_computed_values():
    """raw 0.30 and 0.10 at sens 0.8, spec 0.95 -> 0.25/0.75 = 1/3 and 0.05/0.75 = 1/15; Delta 0.2 -> 0.2/0.75."""
    assert COUNTS.sensitivity == 0.8 and COUNTS.specificity == 0.95
    assert rogan_gladen(0.30, 0.8, 0.95) == pytest.approx(1 / 3)
    assert rogan_gladen(0.10, 0.8, 0.95) == pytest.approx(1 / 15)
    assert round(float(rogan_gladen(0.30, 0.8, 0.95)), 3) == 0.333
    assert round(float(rogan_gladen(0.10, 0.8, 0.95)), 3) == 0.067
    assert corrected_difference(0.2, 0.8, 0.95) == pytest.approx(0.2 / 0.75)
    assert round(float(corrected_difference(0.2, 0.8, 0.95)), 3) == 0.267
    # clipped: an observed rate below the false-positive rate is a true rate of 0, not negative
    assert rogan_gladen(0.02, 0.8, 0.95) == 0.0 and rogan_gladen(0.9, 0.8, 0.95) == 1.0


def test_corrected_statistics_point_and_ci():
    a, b = rates()
    boot = Bootstrap([*a.clusters, *b.clusters], n_boot=2000, seed=3)
    ca, cb = Corrected(a, COUNTS, seed=1), Corrected(b, COUNTS, seed=1)
    d = Corrected(difference(a, b), COUNTS, DIFFERENCE, seed=1)
    sa, sb, sd = boot.score(ca), boot.score(cb), boot.score(d)
    assert sa.value == pytest.approx(1 / 3) and sb.value == pytest.approx(1 / 15) and sd.value == pytest.approx(0.2 / 0.75)
    raw = boot.score(difference(a, b))
    assert raw.value == pytest.approx(0.2)
    # the corrected interval is wider than the raw one scaled by 1/J: it also carries the error rates' uncertainty
    assert (sd.ci_high - sd.ci_low) > (raw.ci_high - raw.ci_low) / 0.75
    for s in (sa, sb, sd):
        assert s.ci_low <= s.value <= s.ci_high
    # reproducible: same seed, same interval; another seed, other draws
    assert boot.score(Corrected(difference(a, b), COUNTS, DIFFERENCE, seed=1)) == sd
    assert boot.score(Corrected(difference(a, b), COUNTS, DIFFERENCE, seed=2)).ci_low != sd.ci_low
    # |Delta|: the point is the plug-in one, its interval derived from the signed one
    ab = boot.score(d.absolute())
    assert ab.value == pytest.approx(0.2 / 0.75) and ab.ci_high == pytest.approx(max(abs(sd.ci_low), abs(sd.ci_high)))


def test_negated_counts_correct_the_complement():
    """Harmful compliance = not refusal: with swapped sensitivity/specificity it is 1 - corrected refusal rate."""
    neg = COUNTS.negated()
    assert neg.sensitivity == COUNTS.specificity and neg.specificity == COUNTS.sensitivity
    for q in (0.1, 0.3, 0.6):
        assert rogan_gladen(1 - q, neg.sensitivity, neg.specificity) == pytest.approx(1 - rogan_gladen(q, 0.8, 0.95))


def test_unidentified_below_the_floor():
    weak = ErrorCounts(tp=55, fn=45, tn=60, fp=40, source="weak")  # J = 0.15
    assert weak.youden <= J_FLOOR and not weak.identified
    a, _ = rates()
    why = corrected(a, weak)
    assert isinstance(why, str) and why.startswith("unidentified") and "weak" in why
    assert corrected(a, None) == "no validation figures for this detector"
    assert np.isnan(rogan_gladen(0.3, 0.55, 0.6))
    # just above the floor on few validation rows: some replicates draw J below it and are dropped, counted
    near = ErrorCounts(tp=12, fn=8, tn=13, fp=7, source="near")  # J = 0.25, n = 40
    s = Bootstrap(a.clusters, n_boot=1000, seed=0).score(Corrected(a, near))
    assert s.value is not None and s.nan_resamples > 0 and "undefined and dropped" in s.ci_note
    with pytest.raises(ValueError):
        ErrorCounts(tp=3, fn=0, tn=0, fp=0)
    with pytest.raises(ValueError):
        ErrorCounts(tp=-1, fn=2, tn=3, fp=1)


def _simulate(rng, true_sens, true_spec, p_a, p_b, n_val, n_clusters, per):
    """One simulated study: validation counts of a detector with known error rates, and flags on two groups
    of clustered rows with known true rates (the truth varies by cluster: each cluster's rate is drawn
    around p)."""
    tp = int(rng.binomial(n_val, true_sens))
    tn = int(rng.binomial(n_val, true_spec))
    counts = ErrorCounts(tp, n_val - tp, tn, n_val - tn, "sim")
    stats = []
    for g, p in (("a", p_a), ("b", p_b)):
        pc = rng.beta(8 * p, 8 * (1 - p), size=n_clusters)  # cluster-level truth, mean p
        truth = rng.random((n_clusters, per)) < pc[:, None]
        flag = np.where(truth, rng.random(truth.shape) < true_sens, rng.random(truth.shape) >= true_spec)
        keys = np.repeat([f"{g}{i}" for i in range(n_clusters)], per)
        stats.append(mean_statistic(keys, flag.ravel().astype(float)))
    return counts, stats


def _covers(score, truth):
    return score.ci_low is not None and score.ci_low <= truth <= score.ci_high


def test_corrected_ci_covers_the_truth():
    """A detector with sensitivity 0.6 and specificity 0.95 (validated on 60 + 60 rows) on two groups with true
    rates 0.3 and 0.1: the raw rate and Delta are biased toward the false-positive rate and toward 0 and their
    CIs rarely hold the truth; the corrected CIs hold it about as often as they claim, and more often than a
    correction that treats the validation figures as exact (the same counts x 1000: same point, no
    uncertainty). Seeded: deterministic (measured: raw 0.10 / 0.15, corrected 0.95 / 0.95, exact 0.74 / 0.93)."""
    rng = np.random.default_rng(20261207)
    sens, spec, p_a, p_b = 0.6, 0.95, 0.3, 0.1
    hits = {k: 0 for k in ("raw_rate", "raw_delta", "rate", "delta", "exact_rate", "exact_delta")}
    sims = 150
    for i in range(sims):
        counts, (a, b) = _simulate(rng, sens, spec, p_a, p_b, n_val=60, n_clusters=60, per=5)
        exact = ErrorCounts(counts.tp * 1000, counts.fn * 1000, counts.tn * 1000, counts.fp * 1000, "exact")
        boot = Bootstrap([*a.clusters, *b.clusters], n_boot=400, seed=i)
        d = difference(a, b)
        hits["raw_rate"] += _covers(boot.score(a), p_a)
        hits["raw_delta"] += _covers(boot.score(d), p_a - p_b)
        hits["rate"] += _covers(boot.score(Corrected(a, counts, seed=i)), p_a)
        hits["delta"] += _covers(boot.score(Corrected(d, counts, DIFFERENCE, seed=i)), p_a - p_b)
        hits["exact_rate"] += _covers(boot.score(Corrected(a, exact, seed=i)), p_a)
        hits["exact_delta"] += _covers(boot.score(Corrected(d, exact, DIFFERENCE, seed=i)), p_a - p_b)
    cov = {k: v / sims for k, v in hits.items()}
    assert cov["raw_rate"] < 0.2 and cov["raw_delta"] < 0.3, cov
    assert cov["rate"] >= 0.88 and cov["delta"] >= 0.88, cov
    # the rate's error is dominated by the uncertain false-positive rate and 1/J; the Delta's by the prompts
    assert cov["rate"] > cov["exact_rate"] + 0.1 and cov["delta"] >= cov["exact_delta"], cov
