"""Diagnostics beside the scores: the switch matrix and the side-effect vector (pure functions).

Switch matrix (per run, suite and condition). The confusion behind identifiability: row a = the
instruction given, column b = the instruction recovered from the response alone (`ident_pred`, the
out-of-fold prediction of identifiability.py), normalised per row:

    P(b | a) = #(given a, recovered b) / #(given a, recovered anything)

so each scored row sums to 1; a row with no recovered prediction (no rows of that type, or
identifiability unscored) is None, never 0. The types are the given and recovered labels, in `order`
first (the suite's declared order), then any others sorted.

A pair {a, b} is *collapsed* when the model's answers to the two instructions are read as each other
at least a quarter of the time on average:

    cross(a, b) = (P(b | a) + P(a | b)) / 2  >=  COLLAPSE_MIN (0.25)

(both rows scored). Perfectly separated types have cross 0, fully swapped ones 1. A 2-type suite whose
model ignores the instruction (the same answer to both types of a prompt, so the same predicted type)
has exactly one of each prompt's two rows wrong: P(b|a) + P(a|b) = 1, cross 0.5, collapsed. With k types
a classifier guessing at random gives 1/k: collapsed for k = 2 (0.5), no pair stands out for
ECLIPTICA's 10 types (0.1). Listed by cross, largest first, each
with P(b|a), P(a|b) and the mean of their diagonal (P(a|a) + P(b|b)) / 2 for reference.
`switch_matrix_change` is run B's matrix minus run A's on the same cases (per cell, None where either is).

Side-effect vector (per run, suite and instruction type t). For each attribute x: the paired change

    d(case) = x(response to case under instruction t) - x(uninstructed response to the same case)

averaged over the cases of type t whose both values are defined (readability needs a word, drift a
non-empty answer), with a percentile CI from the
bootstrap clustered by prompt (stats.py). Attributes (bank.SIDE_EFFECT_ATTRIBUTES): length (words,
whitespace split), hedging (0/1, paper.has_hedge), refusal (0/1, paper.is_refusal), readability (Flesch
reading ease, `flesch_reading_ease`), and drift:<u> for every other type u of the suite: the change in
cosine similarity between the response embedding and u's prototype sentence embedding
(paper.prototype_sentence of u's characteristics). An attribute the type declares in its `targets`
(instructions/<suite>.yaml) is what the instruction means to change: it is reported with
targeted=True; every other one is a side effect.
"""

from __future__ import annotations

import functools
import re
from typing import Hashable, Sequence

import numpy as np

from ..data.bank import DRIFT_PREFIX, SIDE_EFFECT_ATTRIBUTES
from ..measures.stats import Bootstrap, Score, mean_statistic

COLLAPSE_MIN = 0.25
COLLAPSE_RULE = "(P(b|a) + P(a|b)) / 2 >= 0.25"


# ------------------------------------------------------------------------------------------ switch matrix
def _label_order(labels, order: Sequence[str] | None) -> list[str]:
    present = set(labels)
    first = [t for t in (order or ()) if t in present]
    return first + sorted(present - set(first))


def switch_matrix(given: Sequence, recovered: Sequence, order: Sequence[str] | None = None) -> dict:
    """{types, counts, matrix, collapsed, rule} from per-row given and recovered types (recovered None or
    NaN: no prediction for that row). See the module docstring for the definitions."""
    given = [str(g) for g in given]
    rec = [None if r is None or (isinstance(r, float) and r != r) else str(r) for r in recovered]
    types = _label_order(set(given) | {r for r in rec if r is not None}, order)
    index = {t: i for i, t in enumerate(types)}
    counts = np.zeros((len(types), len(types)), dtype=np.int64)
    for g, r in zip(given, rec):
        if r is not None:
            counts[index[g], index[r]] += 1
    totals = counts.sum(axis=1)
    matrix = [[float(c) / totals[i] for c in counts[i]] if totals[i] else None for i in range(len(types))]
    collapsed = []
    for i in range(len(types)):
        for j in range(i + 1, len(types)):
            if matrix[i] is None or matrix[j] is None:
                continue
            cross = (matrix[i][j] + matrix[j][i]) / 2
            if cross >= COLLAPSE_MIN:
                collapsed.append(
                    {
                        "pair": [types[i], types[j]],
                        "cross": cross,
                        "p_b_given_a": matrix[i][j],
                        "p_a_given_b": matrix[j][i],
                        "diagonal": (matrix[i][i] + matrix[j][j]) / 2,
                    }
                )
    collapsed.sort(key=lambda c: -c["cross"])
    return {
        "types": types,
        "counts": counts.tolist(),
        "matrix": matrix,
        "collapsed": collapsed,
        "rule": COLLAPSE_RULE,
        "rows": "instruction given",
        "columns": "instruction recovered",
    }


def matrix_difference(a: dict, b: dict) -> dict:
    """B - A of two switch matrices, per cell over the union of their types (None where either is None)."""
    types = a["types"] + [t for t in b["types"] if t not in a["types"]]

    def cell(m, t, u):
        if t not in m["types"] or u not in m["types"]:
            return None
        row = m["matrix"][m["types"].index(t)]
        return None if row is None else row[m["types"].index(u)]

    diff = []
    for t in types:
        cells = [(cell(a, t, u), cell(b, t, u)) for u in types]
        diff.append(
            None
            if all(x is None or y is None for x, y in cells)
            else [None if x is None or y is None else y - x for x, y in cells]
        )
    return {"types": types, "matrix": diff, "direction": "B - A"}


def switch_matrix_change(given_a, recovered_a, given_b, recovered_b, order=None) -> dict:
    """Both runs' switch matrices on the same cases and their difference B - A."""
    a, b = switch_matrix(given_a, recovered_a, order), switch_matrix(given_b, recovered_b, order)
    return {"a": a, "b": b, "b_minus_a": matrix_difference(a, b)}


# ------------------------------------------------------------------------------------------ readability
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


@functools.lru_cache(maxsize=1)
def _hyphenator():
    import pyphen

    return pyphen.Pyphen(lang="en_US")


@functools.lru_cache(maxsize=65536)
def _syllables(word: str) -> int:
    return len(_hyphenator().positions(word)) + 1


def syllables(word: str) -> int:
    """Syllables of one word: its hyphenation points (pyphen's en_US dictionary) + 1."""
    return _syllables(word.lower())


def flesch_reading_ease(text: str) -> float:
    """206.835 - 1.015 * words / sentences - 84.6 * syllables / words (Flesch 1948; higher = easier).

    Words are runs of letters (an apostrophe inside counts: "can't"), sentences the runs of . ! ? that end
    at a space or the end of the text (at least 1), syllables per word from `syllables`. NaN for a text
    without words. (textstat computes the same formula but needs NLTK's cmudict download, not possible
    offline; pyphen is the hyphenation dictionary textstat itself falls back on.)"""
    words = _WORD.findall(text or "")
    if not words:
        return float("nan")
    sentences = max(1, len(_SENTENCE_END.findall(text.strip())))
    syl = sum(syllables(w) for w in words)
    return 206.835 - 1.015 * len(words) / sentences - 84.6 * syl / len(words)


def readability(texts: Sequence[str]) -> np.ndarray:
    return np.fromiter((flesch_reading_ease(t) for t in texts), dtype=np.float64, count=len(texts))


# ------------------------------------------------------------------------------------------ side effects
def attribute_values(
    words, hedge, refusal, read, emb: np.ndarray | None = None, prototypes: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Per-row attribute arrays: length, hedging, refusal, readability and, for each prototype u (unit
    vector), drift:u = cos(response embedding, prototype u) (rows of `emb` unit-normalised)."""
    # the names (bank.SIDE_EFFECT_ATTRIBUTES, what `targets` may say) in their order: length, hedging, refusal, readability
    out = {name: np.asarray(v, dtype=float) for name, v in zip(SIDE_EFFECT_ATTRIBUTES, (words, hedge, refusal, read))}
    for u, vec in (prototypes or {}).items():
        out[DRIFT_PREFIX + u] = np.asarray(emb, dtype=float) @ np.asarray(vec, dtype=float)
    return out


def paired_rows(case_ids: Sequence, conditions: Sequence, instructed: str, uninstructed: str) -> np.ndarray:
    """For each row: the index of the same case's `uninstructed` row, -1 when the row is not `instructed`
    or the case has no control."""
    control = {c: i for i, (c, k) in enumerate(zip(case_ids, conditions)) if k == uninstructed}
    return np.array([control.get(c, -1) if k == instructed else -1 for c, k in zip(case_ids, conditions)], dtype=np.int64)


def side_effects(
    types: Sequence,
    pair: np.ndarray,
    keys: Sequence[Hashable],
    values: dict[str, np.ndarray],
    targets: dict[str, Sequence[str] | None],
    boot: Bootstrap,
) -> dict:
    """{type: {attribute: Score dict + targeted}} over the rows with a control (pair >= 0).

    types: per-row instruction type; pair: `paired_rows`; keys: per-row cluster (prompt); values: per-row
    attribute arrays (`attribute_values`); targets: type -> declared targets (None: the type is not in the
    instruction file, targeted unknown). A type's drift toward its own prototype is not reported."""
    types = np.asarray([str(t) for t in types], dtype=object)
    keys = np.asarray(keys, dtype=object)
    pair = np.asarray(pair)
    has = pair >= 0
    out = {}
    for t in dict.fromkeys(types[has]):
        rows = np.flatnonzero(has & (types == t))
        declared = targets.get(t)
        per = {}
        for attr, v in values.items():
            if attr == DRIFT_PREFIX + t:
                continue
            d = v[rows] - v[pair[rows]]
            score = (
                boot.score(mean_statistic(keys[rows], d), "attribute undefined for every pair")
                if np.isfinite(d).any()
                else Score.unscored("attribute undefined for every pair", 0)
            )
            per[attr] = {**score.to_dict(), "targeted": None if declared is None else attr in declared}
        out[str(t)] = per
    return out


def suite_side_effects(
    df,
    idx: np.ndarray,
    keys: np.ndarray,
    cols: dict,
    E: np.ndarray,
    encode,
    itypes: dict,
    boot: Bootstrap,
    instructed: str,
    uninstructed: str,
) -> dict | None:
    """`side_effects` of one suite's rows `idx` of a scored run (score.py's per-row `cols` and response
    embeddings `E`); `itypes`: the suite's bundled InstructionTypes by name (their targets and prototypes),
    `encode`: the run's embedder. Drift is undefined (NaN, left out) for empty answers. None when no
    instructed row has an uninstructed control."""
    sub = df.iloc[idx]
    pair_local = paired_rows(sub["case_id"].tolist(), sub["condition"].tolist(), instructed, uninstructed)
    if not (pair_local >= 0).any():
        return None
    names = list(itypes)
    protos = dict(zip(names, encode([itypes[n].prototype() for n in names]))) if len(names) > 1 else {}
    values = attribute_values(
        cols["n_words"][idx],
        cols["has_hedge"][idx],
        cols["is_refusal"][idx],
        readability(sub["response"].tolist()),
        E[idx],
        protos,
    )
    empty = np.asarray(cols["is_empty"], dtype=bool)[idx]
    for name in protos:  # an empty answer's embedding says nothing about where it drifted
        values[DRIFT_PREFIX + name][empty] = np.nan
    targets = {n: tuple(t.targets) for n, t in itypes.items()}
    return side_effects(sub["instruction_type"].tolist(), pair_local, keys[idx], values, targets, boot)


def chance_note(side_by_group: dict) -> str | None:
    """How many untargeted (type, attribute) intervals exclude 0, out of how many were estimated, beside how
    many a 95% CI excludes by chance alone when nothing changed (5% of them): the intervals are not corrected
    for multiple comparisons, so a list of side effects is read against that count. `side_by_group` maps any
    label (a suite, a method) to a `side_effects` block; None when nothing was estimated."""
    tested = hits = 0
    for side in side_by_group.values():
        for per in (side or {}).values():
            for sc in per.values():
                lo, hi = sc.get("ci_low"), sc.get("ci_high")
                if sc.get("targeted") is False and sc.get("value") is not None and lo is not None and hi is not None:
                    tested += 1
                    hits += lo > 0 or hi < 0
    if not tested:
        return None
    return (
        f"{hits} of {tested} untargeted changes have a 95% CI excluding 0; about {0.05 * tested:.1f} would by chance "
        "alone if the instructions changed nothing else (the intervals are not corrected for multiple comparisons)."
    )


def significant(side: dict) -> list[dict]:
    """The (type, attribute) entries whose CI excludes 0, untargeted first, by |estimate|."""
    rows = []
    for t, per in (side or {}).items():
        for attr, sc in per.items():
            lo, hi = sc.get("ci_low"), sc.get("ci_high")
            if sc.get("value") is not None and lo is not None and hi is not None and (lo > 0 or hi < 0):
                rows.append({"type": t, "attribute": attr, **sc})
    rows.sort(key=lambda r: (bool(r["targeted"]), -abs(r["value"])))
    return rows
