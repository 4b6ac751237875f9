"""Training a learned detector (used by `ecliptica build-detectors` only; inference is learned.py).

A Labelled set: texts, gold labels of the kind, a group per row (the source model: the unit of grouped
cross-validation) and named subsets (e.g. the rows answering safe prompts). train_linear fits a
multinomial LogisticRegression (lbfgs, deterministic) on features.py's features:

- C is chosen by grouped (leave-one-group-out) cross-validation over the training groups, by the binary
  (positive vs negative) kappa pooled over the held-out groups (ties: the smaller C, the stronger prior);
- the reported held-out figures are nested: for each group, C is chosen by grouped CV over the other groups
  only, the model is fitted on them and scored on the held-out group, so no figure has seen its own rows;
- the shipped model is then fitted on every group with the C chosen over all of them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .base import POSITIVE, binary_figures
from .learned import FORMAT, predict_proba


@dataclass
class Labelled:
    name: str  # the external set, e.g. "xstest-v2"
    kind: str
    texts: list[str]
    labels: np.ndarray  # str labels of the kind
    groups: np.ndarray  # source model per row
    subsets: dict[str, np.ndarray] = field(default_factory=dict)  # validation subset name -> row mask
    emb: np.ndarray | None = None

    @property
    def positive(self) -> np.ndarray:
        return np.isin(self.labels, sorted(POSITIVE[self.kind]))


def _fit(X, y, C: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; max_iter is generous
        return LogisticRegression(C=C, max_iter=5000, tol=1e-6, random_state=seed).fit(X, y)


def _weights(model, name: str, kind: str, features: dict) -> dict:
    coef = model.coef_
    return {
        "format": FORMAT,
        "name": name,
        "kind": kind,
        "classes": [str(c) for c in model.classes_],
        "features": features,
        "coef": [[float(v) for v in row] for row in coef],
        "intercept": [float(v) for v in model.intercept_],
    }


def positive_of(weights: dict, X) -> np.ndarray:
    p = predict_proba(weights, X)
    pos = np.array([c in POSITIVE[weights["kind"]] for c in weights["classes"]])
    return p[:, pos].sum(axis=1) >= 0.5


def _grouped_pred(X, y, groups, rows, C, seed, name, kind, features) -> np.ndarray:
    """Leave-one-group-out positive calls for `rows` (indices), each from a model fitted on the other groups of rows."""
    out = np.zeros(len(rows), dtype=bool)
    g = groups[rows]
    for held in dict.fromkeys(g.tolist()):
        tr, te = rows[g != held], rows[g == held]
        w = _weights(_fit(X[tr], y[tr], C, seed), name, kind, features)
        out[g == held] = positive_of(w, X[te])
    return out


def choose_C(X, y, groups, rows, Cs, seed, name, kind, features) -> tuple[float, dict]:
    """The C of Cs with the best pooled leave-one-group-out kappa over `rows` ({C: kappa} beside it)."""
    gold = np.isin(y[rows], sorted(POSITIVE[kind]))
    scores = {}
    for C in Cs:
        pred = _grouped_pred(X, y, groups, rows, C, seed, name, kind, features)
        scores[C] = binary_figures(gold, pred)["kappa"] or 0.0
    best = max(Cs, key=lambda c: (round(scores[c], 10), -c))
    return best, scores


def train_linear(data: Labelled, features: dict, name: str, Cs=(0.1, 0.3, 1.0, 3.0, 10.0), seed: int = 0, featurize=None):
    """(weights, validation {set: figures}, hyperparameters): module docstring. `featurize(config, texts, emb)`."""
    if featurize is None:
        from .features import featurize
    X = featurize(features, data.texts, data.emb)
    y = np.asarray(data.labels, dtype=object)
    groups = np.asarray(data.groups)
    all_rows = np.arange(len(y))
    uniq = list(dict.fromkeys(groups.tolist()))
    held_out = np.zeros(len(y), dtype=bool)
    chosen = {}
    for held in uniq:
        inner = all_rows[groups != held]
        C, _ = choose_C(X, y, groups, inner, Cs, seed, name, data.kind, features)
        chosen[held] = C
        w = _weights(_fit(X[inner], y[inner], C, seed), name, data.kind, features)
        held_out[groups == held] = positive_of(w, X[groups == held])
    C, scores = choose_C(X, y, groups, all_rows, Cs, seed, name, data.kind, features)
    weights = _weights(_fit(X, y, C, seed), name, data.kind, features)
    validation = validation_figures(data, held_out)
    hyper = {
        "model": "sklearn LogisticRegression (multinomial, lbfgs, L2)",
        "C": C,
        "C_grid": list(Cs),
        "C_grouped_cv_kappa": {str(k): v for k, v in scores.items()},
        "C_chosen_per_held_out_group": chosen,
        "max_iter": 5000,
        "tol": 1e-6,
        "seed": seed,
        "threshold": "positive classes' probability sum >= 0.5",
        "validation": "nested leave-one-source-model-out: C chosen by grouped CV inside the training models",
    }
    return weights, validation, hyper


def validation_figures(data: Labelled, pred: np.ndarray) -> dict:
    """{set: figures} of positive calls against the set's gold: the whole set (per model) and each subset."""
    gold = data.positive
    out = {data.name: binary_figures(gold, pred, data.groups)}
    for sub, mask in data.subsets.items():
        out[sub] = binary_figures(gold[mask], pred[mask], data.groups[mask])
    return out
