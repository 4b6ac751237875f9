"""Identifiability: can the instruction type be recovered from the response alone?

A multinomial logistic regression on the response embedding predicts instruction_type, evaluated with
out-of-fold predictions under GroupKFold by prompt (no prompt is ever in both train and test), so it
measures instruction-specific behaviour that generalises across prompts. Degenerate diversity (random,
looping or off-topic text) shifts embeddings apart but carries no type signal, so it cannot fake this.

The CI (computed by the caller with the clustered bootstrap) resamples the evaluation prompts over the
fixed out-of-fold predictions; it does not refit the classifier.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

MAX_FOLDS = 5
MIN_GROUPS_PER_FOLD = 2


@dataclass
class Identifiability:
    predicted: np.ndarray | None  # per row (object array), None when unscored
    correct: np.ndarray | None  # per row float 0/1
    labels: list[str]
    confusion: list[list[int]] | None  # rows = true type, columns = predicted type (order: labels)
    chance: float | None  # 1 / n_types
    majority: float | None  # share of the most frequent type
    folds: int
    unscored_reason: str | None = None

    def confusion_dict(self) -> dict | None:
        if self.confusion is None:
            return None
        return {
            "labels": self.labels,
            "matrix": self.confusion,
            "rows": "true instruction_type",
            "columns": "predicted instruction_type",
            "folds": self.folds,
        }


def identifiability(emb: np.ndarray, types: Sequence[str], groups: Sequence[Hashable], seed: int = 0) -> Identifiability:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    types = np.asarray([str(t) for t in types], dtype=object)
    labels = sorted(set(types))
    n_groups = len(set(groups))
    unscored = dict(predicted=None, correct=None, labels=labels, confusion=None, folds=0)
    if len(labels) < 2:
        return Identifiability(**unscored, chance=None, majority=None, unscored_reason="fewer than 2 instruction types")
    counts = np.array([np.sum(types == lab) for lab in labels])
    chance, majority = 1.0 / len(labels), float(counts.max() / counts.sum())
    folds = min(MAX_FOLDS, n_groups // MIN_GROUPS_PER_FOLD)
    if folds < 2:
        return Identifiability(
            **unscored,
            chance=chance,
            majority=majority,
            unscored_reason=f"{n_groups} prompts: needs at least {2 * MIN_GROUPS_PER_FOLD} for grouped cross-validation",
        )
    group_ids = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
    pred = np.empty(len(types), dtype=object)
    for train, test in GroupKFold(n_splits=folds).split(emb, types, group_ids):
        train_labels = set(types[train])
        if len(train_labels) == 1:  # degenerate fold: the only thing to predict is that label
            pred[test] = next(iter(train_labels))
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
        # one BLAS/OpenMP thread: these matrices are small, and threaded BLAS spin-waits badly when the
        # cores are shared (measured 20x slower under load), while one thread loses little when idle
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            clf.fit(emb[train], types[train])
        pred[test] = clf.predict(emb[test])
    index = {lab: i for i, lab in enumerate(labels)}
    conf = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(types, pred):
        conf[index[t], index[p]] += 1
    return Identifiability(pred, (pred == types).astype(float), labels, conf.tolist(), chance, majority, folds)
