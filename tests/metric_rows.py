"""Call a suite's paper metric (Suite.paper.compute) on plain lists, as the scorer would on one condition."""

import numpy as np

from ecliptica_bench.measures.paper import ScoredRows
from ecliptica_bench.suites import get_suite


def suite_stats(suite: str, keys, types, texts, *, fid=None, emb=None, axioms=None, labels=None):
    columns = {c: np.asarray(v, dtype=object) for c, v in (("axiom", axioms), ("label", labels)) if v is not None}
    rows = ScoredRows(
        keys=np.asarray(keys, dtype=object),
        types=np.asarray(types, dtype=object),
        texts=list(texts),
        emb=None if emb is None else np.asarray(emb),
        fidelity=None if fid is None else np.asarray(fid, dtype=float),
        columns=columns,
    )
    return get_suite(suite).paper.compute(rows)
