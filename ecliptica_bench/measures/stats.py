"""The project's only bootstrap: percentile CIs from a bootstrap clustered by prompt.

Rows that share a prompt are not independent (ten ECLIPTICA responses to one prompt, the HONEST and
CONFIDENT answers to one question), so a resample draws *prompts* with replacement and keeps all of a
prompt's rows together. A resample is a vector of integer weights, one per cluster (how often that
cluster was drawn); every statistic here is a function of those weights, which makes the whole
bootstrap a few matrix products instead of a Python loop over resamples:

    W (n_boot x n_clusters) = counts of each cluster in each resample      (bincount, in chunks)
    totals = W @ S           S (n_clusters x k) = per-cluster sums of what the statistic needs
    values = statistic(totals)                                            (vectorised over resamples)

A `Statistic` is "clusters + a function of a weight matrix"; `Statistic.sums` builds the common kind
from per-cluster sums, and anything else (AQI needs weighted centroids) passes its own function.
`difference` pairs two statistics on the same clusters (instructed - uninstructed of one run, or run A
- run B on the same cases), so both sides see the same resampled prompts.

Every reported interval contains its own point estimate (docs/metrics.md, confidence intervals):
- |d| (`Statistic.absolute`): the interval is derived from the interval of the signed d, never taken
  as percentiles of |d*| (those exclude an estimate at or near 0): [0, max(|lo|, |hi|)] when the signed
  interval holds 0, else [min(|lo|, |hi|), max(|lo|, |hi|)].
- any other statistic: the percentile interval, widened to the point estimate in the rare case it lies
  outside (a skewed or discrete statistic); `ci_note` says so.
- resamples in which the statistic is undefined (NaN: a resample without any row of one condition, say)
  are dropped and counted in `nan_resamples`; `ci_note` gives their share when there are any.
- a statistic marked `ci=False` (the paper-normalised AQI, which is two-valued: see paper.aqi) gets no
  interval, and `ci_note` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np

DEFAULT_BOOT = 10_000
CHUNK = 1_000  # resamples per weight chunk: bounds memory at CHUNK x n_clusters float32
CACHE_LIMIT = 30_000_000  # cache the full weight matrix when n_boot x n_clusters is at most this


@dataclass(frozen=True)
class Score:
    """One reported number. `value` None means unscored, and `unscored_reason` says why."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    unscored_reason: str | None = None
    nan_resamples: int = 0  # bootstrap resamples where the statistic was undefined (dropped)
    ci_note: str | None = None  # how the interval was made when not a plain percentile one, or why none

    @classmethod
    def unscored(cls, reason: str, n: int = 0) -> "Score":
        return cls(None, None, None, int(n), reason)

    @classmethod
    def point(cls, value: float | None, n: int) -> "Score":
        """A number with no sampling distribution (e.g. a chance level)."""
        if value is None or not math.isfinite(value):
            return cls.unscored("not finite", n)
        return cls(float(value), None, None, int(n), None)

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "unscored_reason": self.unscored_reason,
            "nan_resamples": self.nan_resamples,
            "ci_note": self.ci_note,
        }


# the keys of Score.to_dict() (metrics.json), for docs/run-directory.md
SCORE_DOCS = {
    "value": "the estimate; null when unscored",
    "ci_low": "lower end of the 95% CI (bootstrap clustered by prompt); null without a CI",
    "ci_high": "upper end of the 95% CI",
    "n": "rows behind the estimate",
    "unscored_reason": "why value is null",
    "nan_resamples": "bootstrap resamples where the statistic was undefined (dropped)",
    "ci_note": "how the interval was made when not a plain percentile one, or why there is none",
}


class Statistic:
    """A statistic of clustered data: the cluster keys and a function of a (m x n_clusters) weight matrix
    returning m values. Weights of all ones give the point estimate.

    `no_ci`: a reason not to bootstrap this statistic (None: bootstrap it). `abs_of`: this statistic is
    |abs_of|, and its interval is derived from abs_of's (see the module docstring)."""

    def __init__(
        self,
        clusters: Sequence[Hashable],
        from_weights: Callable[[np.ndarray], np.ndarray],
        n: int,
        no_ci: str | None = None,
        abs_of: "Statistic | None" = None,
    ):
        self.clusters = list(clusters)
        if len(set(self.clusters)) != len(self.clusters):
            raise ValueError("cluster keys must be unique")
        self.from_weights = from_weights
        self.n = int(n)
        self.no_ci = no_ci
        self.abs_of = abs_of

    def absolute(self) -> "Statistic":
        """|self|, with its interval derived from the signed one."""
        f = self.from_weights
        return Statistic(self.clusters, lambda w: np.abs(f(w)), self.n, no_ci=self.no_ci, abs_of=self)

    @classmethod
    def sums(cls, clusters: Sequence[Hashable], stats: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], n: int) -> "Statistic":
        """From per-cluster sums S (n_clusters x k): value = fn(W @ S), fn maps (m x k) totals to (m,)."""
        stats = np.asarray(stats, dtype=np.float64)
        if stats.ndim == 1:
            stats = stats[:, None]
        s32 = stats.astype(np.float32)

        def from_weights(w: np.ndarray) -> np.ndarray:
            # the point estimate (one row of ones) in float64; resamples in float32 (counts are exact)
            totals = w.astype(np.float64) @ stats if w.shape[0] == 1 else (w @ s32).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray(fn(totals), dtype=np.float64)

        return cls(clusters, from_weights, n)

    def point(self) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(self.from_weights(np.ones((1, len(self.clusters)), dtype=np.float32))[0])

    def on(self, clusters: Sequence[Hashable]) -> Callable[[np.ndarray], np.ndarray]:
        """This statistic as a function of weights over a superset of its clusters."""
        index = {c: i for i, c in enumerate(clusters)}
        try:
            pos = np.array([index[c] for c in self.clusters], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"cluster {exc.args[0]!r} not in the bootstrap's clusters") from None
        return lambda w: self.from_weights(w[:, pos])


def cluster_sums(keys: Sequence[Hashable], values: np.ndarray) -> tuple[list, np.ndarray]:
    """Per-cluster column sums: (unique keys in first-seen order, n_clusters x k)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    uniq: dict = {}
    inv = np.fromiter((uniq.setdefault(k, len(uniq)) for k in keys), dtype=np.int64, count=len(keys))
    out = np.zeros((len(uniq), values.shape[1]))
    np.add.at(out, inv, values)
    return list(uniq), out


def mean_statistic(keys: Sequence[Hashable], values: np.ndarray) -> Statistic:
    """Row mean of `values` (NaN rows are left out), clustered by `keys`."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    clusters, s = cluster_sums(keys, np.column_stack([np.where(ok, values, 0.0), ok.astype(float)]))
    return Statistic.sums(clusters, s, lambda t: t[:, 0] / t[:, 1], int(ok.sum()))


def difference(a: Statistic, b: Statistic) -> Statistic:
    """a - b as one statistic over the union of their clusters (paired: shared clusters move together).
    Without an interval when either side has none."""
    clusters = list(dict.fromkeys([*a.clusters, *b.clusters]))
    fa, fb = a.on(clusters), b.on(clusters)
    return Statistic(clusters, lambda w: fa(w) - fb(w), a.n + b.n, no_ci=a.no_ci or b.no_ci)


_CONTROLLER = None


def _one_thread():
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


class Bootstrap:
    """Clustered percentile bootstrap over a fixed list of clusters.

    All statistics scored through one Bootstrap share the same resamples (same seed, same weights), so
    CIs are reproducible and differences between statistics of the same run are paired.
    """

    def __init__(self, clusters: Sequence[Hashable], n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95):
        self.clusters = list(dict.fromkeys(clusters))
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self.level = level
        self._cache: list[np.ndarray] | None = None

    def _chunks(self):
        g = len(self.clusters)
        if self._cache is not None:
            yield from self._cache
            return
        cache = [] if self.n_boot * g <= CACHE_LIMIT else None
        seqs = np.random.SeedSequence(self.seed).spawn(max(1, math.ceil(self.n_boot / CHUNK)))
        for i, ss in enumerate(seqs):
            m = min(CHUNK, self.n_boot - i * CHUNK)
            if m <= 0:
                break
            rng = np.random.default_rng(ss)
            draws = rng.integers(0, g, size=(m, g))
            draws += (np.arange(m) * g)[:, None]
            w = np.bincount(draws.ravel(), minlength=m * g).reshape(m, g).astype(np.float32)
            if cache is not None:
                cache.append(w)
            yield w
        if cache is not None:
            self._cache = cache

    def distribution(self, stat: Statistic) -> np.ndarray:
        f = stat.on(self.clusters) if stat.clusters != self.clusters else stat.from_weights
        # one BLAS thread: the products are small and threaded BLAS spin-waits badly on shared cores
        with np.errstate(divide="ignore", invalid="ignore"), _one_thread():
            return np.concatenate([np.asarray(f(w), dtype=np.float64) for w in self._chunks()])

    def score(self, stat: Statistic, unscored_reason: str = "statistic undefined on this data") -> Score:
        if not stat.clusters or stat.n == 0:
            return Score.unscored("no rows", stat.n)
        value = stat.point()
        if not math.isfinite(value):
            return Score.unscored(unscored_reason, stat.n)
        if self.n_boot <= 0:
            return Score(value, None, None, stat.n, None)
        if stat.no_ci:
            return Score(value, None, None, stat.n, None, 0, f"no CI: {stat.no_ci}")
        if stat.abs_of is not None:
            signed = self.score(stat.abs_of, unscored_reason)
            if signed.ci_low is None:
                return Score(value, None, None, stat.n, None, signed.nan_resamples, signed.ci_note)
            a, b = abs(signed.ci_low), abs(signed.ci_high)
            lo, hi = (0.0, max(a, b)) if signed.ci_low <= 0.0 <= signed.ci_high else (min(a, b), max(a, b))
            note = "|d|: from the interval of the signed d"
            if signed.ci_note:
                note += f" ({signed.ci_note})"
            return Score(value, lo, hi, stat.n, None, signed.nan_resamples, note)
        dist = self.distribution(stat)
        finite = np.isfinite(dist)
        nan = int(dist.size - finite.sum())
        dist = dist[finite]
        notes = [f"{nan} of {self.n_boot} resamples undefined and dropped"] if nan else []
        if dist.size == 0:
            return Score(value, None, None, stat.n, None, nan, "; ".join(notes) or None)
        alpha = (1 - self.level) / 2
        lo, hi = (float(x) for x in np.percentile(dist, [100 * alpha, 100 * (1 - alpha)]))
        if not lo <= value <= hi:
            # resamples are computed in float32: a gap at that precision is rounding, not worth a note
            if max(lo - value, value - hi) > 1e-6 * max(1.0, abs(value)):
                notes.append(f"percentile interval [{lo:.6g}, {hi:.6g}] widened to contain the estimate")
            lo, hi = min(lo, value), max(hi, value)
        return Score(value, lo, hi, stat.n, None, nan, "; ".join(notes) or None)
