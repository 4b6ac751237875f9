"""Property: every interval the scorer reports contains its own point estimate (docs/metrics.md).

For random small data sets of every suite, every statistic scoring.score puts into metrics.json (the
paper metric, the headline metric, every component and signal, and the instructed - uninstructed deltas
of both) is bootstrapped, and each interval must hold its estimate. Small data sets are where the
percentile bootstrap misbehaves (|d| near 0, discrete rates, resamples missing a condition).
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metric_rows import suite_stats
from stats_helpers import contains_estimate

from ecliptica_bench.measures import paper
from ecliptica_bench.measures.stats import Bootstrap, difference

HEDGED, PLAIN = "Maybe it is 4.", "It is 4."
REFUSED, HELPED = "I can't help with that.", "Sure, here it is."
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def all_statistics(stats: paper.SuiteStats) -> dict:
    return {
        "paper": stats.paper,
        "headline": stats.headline,
        **{f"components.{k}": v for k, v in stats.components.items()},
        **{f"signals.{k}": v for k, v in stats.signals.items()},
    }


def check(suite: str, ins: dict, unins: dict, seed: int) -> int:
    """Score both conditions' statistics and the deltas; assert containment. Returns the CIs checked."""
    a, b = suite_stats(suite, **ins), suite_stats(suite, **unins)
    clusters = list(dict.fromkeys([*ins["keys"], *unins["keys"]]))
    boot = Bootstrap(clusters, 150, seed=seed)
    named = {
        **{f"instructed.{k}": v for k, v in all_statistics(a).items()},
        **{f"uninstructed.{k}": v for k, v in all_statistics(b).items()},
        "delta": difference(a.headline, b.headline),
        "delta_paper": difference(a.paper, b.paper),
    }
    checked = 0
    for name, stat in named.items():
        sc = boot.score(stat)
        assert contains_estimate(sc), (suite, name, sc)
        assert 0 <= sc.nan_resamples <= 150
        checked += sc.ci_low is not None
    return checked


def two_condition(draw, suite, first, second, texts):
    """Rows of one condition: each prompt has 1-3 `first` rows and 1-3 `second` rows (so rates are ratios
    of resampled counts), all rows of one prompt and type with one drawn text. In "balanced" draws the
    `second` rows are the `first` rows rotated by one prompt: equal rates (a signed difference of 0,
    |d| = 0) on different prompts, so resamples scatter on both sides of 0 (where percentiles of |d*|
    would exclude the estimate)."""
    n = draw(st.integers(2, 40))
    firsts = draw(st.lists(st.tuples(st.integers(1, 3), st.booleans()), min_size=n, max_size=n))
    seconds = (
        firsts[1:] + firsts[:1]
        if draw(st.booleans())
        else draw(st.lists(st.tuples(st.integers(1, 3), st.booleans()), min_size=n, max_size=n))
    )
    keys, types, flags = [], [], []
    for i, ((m1, f1), (m2, f2)) in enumerate(zip(firsts, seconds)):
        keys += [f"p{i}"] * (m1 + m2)
        types += [first] * m1 + [second] * m2
        flags += [f1] * m1 + [f2] * m2
    return {"keys": keys, "types": types, "texts": [texts[f] for f in flags]}


@st.composite
def rate_suite(draw):
    suite = draw(st.sampled_from(["truthfulqa", "conditional_safety", "length_control"]))
    if suite == "truthfulqa":
        args = ("honest", "confident", {True: HEDGED, False: PLAIN})
    elif suite == "conditional_safety":
        args = ("strict", "permissive", {True: REFUSED, False: HELPED})
    else:
        args = ("detailed", "concise", {True: " ".join(["w"] * draw(st.integers(0, 40))), False: "a b"})
    return suite, two_condition(draw, suite, *args), two_condition(draw, suite, *args), draw(st.integers(0, 10**6))


@given(rate_suite())
@SETTINGS
def test_rate_suites_intervals_contain_estimates(case):
    suite, ins, unins, seed = case
    check(suite, ins, unins, seed)


@given(st.integers(2, 8), st.integers(2, 4), st.integers(0, 10**6), st.booleans())
@SETTINGS
def test_awareness_intervals_contain_estimates(n_prompts, per, seed, identical_control):
    rng = np.random.default_rng(seed)
    conds = []
    for c in range(2):
        keys = [f"p{i}" for i in range(n_prompts) for _ in range(per)]
        emb = rng.normal(size=(len(keys), 4))
        if c == 1 and identical_control:  # the greedy control: one answer per prompt, shift 0
            emb = np.repeat(emb[::per], per, axis=0)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        fid = rng.uniform(0.4, 0.7, len(keys))
        fid[rng.random(len(keys)) < 0.1] = np.nan
        conds.append({"keys": keys, "types": ["t"] * len(keys), "texts": ["x"] * len(keys), "fid": fid, "emb": emb})
    check("ecliptica", conds[0], conds[1], seed)


@given(st.integers(3, 8), st.integers(0, 10**6), st.floats(0.0, 3.0), st.booleans())
@SETTINGS
def test_aqi_intervals_contain_estimates(per, seed, sep, zero_spread):
    rng = np.random.default_rng(seed)
    conds = []
    for c in range(2):
        keys, axioms, labels, rows = [], [], [], []
        for a in range(2):
            for lab, sgn in (("safe", 1), ("unsafe", -1)):
                for i in range(per):
                    keys.append(f"{a}/{lab}/{i}")
                    axioms.append(f"axiom {a}")
                    labels.append(lab)
                    noise = 0.0 if zero_spread and c == 0 else rng.normal(size=3) * 0.5
                    rows.append(np.array([sgn * sep / 2, a, 1.0]) + noise)
        emb = np.array(rows)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        conds.append(
            {
                "keys": keys,
                "types": ["generic"] * len(keys),
                "texts": ["x"] * len(keys),
                "emb": emb,
                "axioms": axioms,
                "labels": labels,
            }
        )
    check("litmus", conds[0], conds[1], seed)
