"""Rates corrected for detector error (Rogan-Gladen), with CIs that carry the uncertainty of the error rates.

A detector (keyword, learned or user-supplied) flags a response as positive (refusal, hedged) with
sensitivity Se = P(flag | positive) and specificity Sp = P(no flag | negative), measured on an external
validation set. The observed rate q of flags relates to the true rate p by q = Se p + (1 - Sp)(1 - p), so

    p = (q + Sp - 1) / J,     J = Se + Sp - 1 (Youden's J)                     (Rogan & Gladen 1978)

clipped to [0, 1]. Every rate the suites build from flags is a mean of flags, and every Delta built on
them is a linear combination whose coefficients sum to zero (a difference of rates, or a difference of
such differences: M3's STRICT - PERMISSIVE, instructed - uninstructed), so the constant (Sp - 1) / J
cancels and a difference corrects as d / J, clipped to [-1, 1]. Why this estimator: it is the
moment/maximum-likelihood estimator under the one assumption the validation figures support (the
detector's Se and Sp are the same on the scored rows as on the validation set); anything richer (error
rates that vary by model or phrasing) needs labels on the scored rows, which a benchmark run does not
have. That assumption is the method's limit: where a model's phrasing is unlike the validation set's, the
correction is only as good as the transfer of Se and Sp (metrics.json names the set behind every value).

Unidentified below a floor. When J is small the detector barely separates the classes and 1 / J blows
up every error (J = 0: the flags carry no information). A point estimate with J <= J_FLOOR (0.2: errors
amplified at most 5x) is reported as unscored ("unidentified: ..."), and a bootstrap replicate whose
drawn J falls at or below the floor is NaN, which the bootstrap drops and counts (Score.nan_resamples,
ci_note), so a detector near the floor shows it in its interval's note.

CIs. The uncertainty of the corrected value has two independent sources: the scored prompts (the
clustered bootstrap of measures/stats.py) and the finite validation set behind Se and Sp. A `Corrected`
statistic is a function of bootstrap weights like any other: for each replicate (row of the weight
matrix) it evaluates the raw statistic on the resampled prompts and divides by a fresh draw of (Se, Sp)
from their posteriors under Jeffreys priors, Se ~ Beta(tp + 1/2, fn + 1/2), Sp ~ Beta(tn + 1/2, fp + 1/2)
(the validation counts; the Jeffreys prior keeps draws inside (0, 1) when a count is 0, and its
intervals have close to nominal frequentist coverage for a binomial proportion, Brown, Cai & DasGupta
2001). The percentile interval of the replicates then approximates the distribution of the plug-in
estimator under both sources, like resampling the validation set inside every bootstrap replicate, at
the cost of two Beta draws per replicate. The point estimate uses the plug-in Se = tp / (tp + fn),
Sp = tn / (tn + fp).

Reproducible. The draws of a replicate chunk are seeded by (seed, the validation counts, a hash of the
chunk's weight matrix): the same bootstrap gives the same draws on every call and machine (the weights
are exact integer counts), and statistics on the same prompts see the same draws in the same replicate
(the detector's error moves them together).

Scope: this module knows only numbers; scoring/ builds ErrorCounts from a detector's validation figures.
A difference of two Corrected statistics (stats.difference) is not the corrected difference: build the
raw difference first and correct it with kind="difference".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .stats import Statistic

J_FLOOR = 0.2  # Youden's J at or below which a correction is unidentified (errors amplified more than 5x)
PRIOR = 0.5  # Jeffreys: Beta(count + 1/2, other + 1/2)

RATE = "rate"
DIFFERENCE = "difference"


@dataclass(frozen=True)
class ErrorCounts:
    """A detector's confusion counts on a validation set (positive = the flag's class, e.g. refusal)."""

    tp: int
    fn: int
    tn: int
    fp: int
    source: str = ""  # the validation set(s) behind the counts, for the reader

    def __post_init__(self):
        for k in ("tp", "fn", "tn", "fp"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"ErrorCounts.{k} must be a non-negative integer, got {v!r}")
        if self.tp + self.fn == 0 or self.tn + self.fp == 0:
            raise ValueError(f"ErrorCounts{' (' + self.source + ')' if self.source else ''}: needs positives and negatives")

    @property
    def n(self) -> int:
        return int(self.tp + self.fn + self.tn + self.fp)

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp)

    @property
    def youden(self) -> float:
        return self.sensitivity + self.specificity - 1.0

    @property
    def identified(self) -> bool:
        return self.youden > J_FLOOR

    def negated(self) -> "ErrorCounts":
        """The counts of the complementary flag (not refusal = compliance): sensitivity and specificity swap."""
        return ErrorCounts(self.tn, self.fp, self.tp, self.fn, self.source)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "n": self.n,
            "tp": int(self.tp),
            "fn": int(self.fn),
            "tn": int(self.tn),
            "fp": int(self.fp),
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "youden_j": self.youden,
            "identified": self.identified,
        }


def rogan_gladen(q, sens, spec, floor: float = J_FLOOR) -> np.ndarray:
    """True rate from an observed rate q: (q + spec - 1) / (sens + spec - 1), clipped to [0, 1]; NaN where
    sens + spec - 1 <= floor (unidentified) or q is NaN. Broadcasts over arrays."""
    q, sens, spec = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (q, sens, spec)))
    j = sens + spec - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.clip((q + spec - 1.0) / j, 0.0, 1.0)
    return np.where((j > floor) & np.isfinite(q), p, np.nan)


def corrected_difference(d, sens, spec, floor: float = J_FLOOR) -> np.ndarray:
    """A difference of two rates from the same detector, corrected: d / (sens + spec - 1), clipped to [-1, 1];
    NaN where sens + spec - 1 <= floor."""
    d, sens, spec = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (d, sens, spec)))
    j = sens + spec - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.clip(d / j, -1.0, 1.0)
    return np.where((j > floor) & np.isfinite(d), out, np.nan)


_CORRECT = {RATE: rogan_gladen, DIFFERENCE: corrected_difference}


def unidentified_reason(counts: ErrorCounts) -> str:
    return (
        f"unidentified: the detector's sensitivity + specificity - 1 = {counts.youden:.3f} on {counts.source or 'its validation set'} "
        f"is at or below {J_FLOOR} (the correction would amplify errors more than {1 / J_FLOOR:.0f}x)"
    )


class Corrected(Statistic):
    """`raw` (a rate, or a zero-sum combination of rates: kind="difference") corrected for the detector error
    `counts`; each bootstrap replicate draws its own (sens, spec) (module docstring)."""

    def __init__(self, raw: Statistic, counts: ErrorCounts, kind: str = RATE, seed: int = 0, floor: float = J_FLOOR):
        if kind not in _CORRECT:
            raise ValueError(f"kind must be {RATE!r} or {DIFFERENCE!r}, got {kind!r}")
        if raw.abs_of is not None:
            raise ValueError("correct the signed statistic, then take .absolute()")
        self.raw, self.counts, self.kind, self.seed, self.floor = raw, counts, kind, int(seed), float(floor)
        correct = _CORRECT[kind]
        f = raw.from_weights

        def from_weights(w: np.ndarray) -> np.ndarray:
            sens, spec = self.draws(w)
            return correct(f(w), sens, spec, self.floor)

        super().__init__(raw.clusters, from_weights, raw.n, no_ci=raw.no_ci)

    def draws(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sens, spec), one pair per row of the weight matrix w, from the Jeffreys posteriors; seeded by the
        seed, the counts and the weights (the same chunk always gets the same draws)."""
        w = np.ascontiguousarray(w, dtype=np.float32)
        digest = hashlib.blake2b(w.tobytes(), digest_size=16, person=b"ecl-correction").digest()
        c = self.counts
        entropy = [self.seed, int(c.tp), int(c.fn), int(c.tn), int(c.fp), *np.frombuffer(digest, dtype=np.uint32).tolist()]
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        m = w.shape[0]
        sens = rng.beta(c.tp + PRIOR, c.fn + PRIOR, size=m)
        spec = rng.beta(c.tn + PRIOR, c.fp + PRIOR, size=m)
        return sens, spec

    def point(self) -> float:
        """The plug-in estimate: the raw statistic corrected with the validation set's Se and Sp."""
        q = self.raw.point()
        return float(_CORRECT[self.kind](q, self.counts.sensitivity, self.counts.specificity, self.floor))

    def absolute(self) -> Statistic:
        """|self| (M3's published absolute value), its point the plug-in one and its interval from the signed."""
        return _Absolute(self)


class _Absolute(Statistic):
    def __init__(self, signed: Corrected):
        f = signed.from_weights
        super().__init__(signed.clusters, lambda w: np.abs(f(w)), signed.n, no_ci=signed.no_ci, abs_of=signed)

    def point(self) -> float:
        return abs(self.abs_of.point())


def corrected(raw: Statistic, counts: ErrorCounts | None, kind: str = RATE, seed: int = 0) -> Statistic | str:
    """The corrected statistic, or the reason there is none (no validation figures, unidentified)."""
    if counts is None:
        return "no validation figures for this detector"
    if not counts.identified:
        return unidentified_reason(counts)
    return Corrected(raw, counts, kind, seed)
