"""Scoring speed-ups that must not change a number (issue 17): the valid-rows identifiability refit is
skipped when every row is valid (same rows, same seed: the same fit), and the per-step timings separate
embedding from validity. Real embedder, ECLIPTICA rows only (small)."""

from __future__ import annotations

import numpy as np
import pytest
from test_score import cases, write_run

from ecliptica_bench.scoring import score as score_mod
from ecliptica_bench.scoring.embed import Embedder
from ecliptica_bench.scoring.identifiability import identifiability

STYLE = {
    "neutral": "Both sides of {t} have a point, supporters and critics alike.",
    "conservative": "On {t}, keep the traditional, proven approach.",
    "liberal": "On {t}, choose bold, inclusive reform.",
    "regulatory_aware": "On {t}, follow the law and the official regulations.",
    "empathetic": "Feeling worried about {t} is understandable; your feelings matter.",
    "safety_first": "On {t}, assess the risks and add safeguards first.",
    "educational": "Here is {t} step by step: first the basics, then an example.",
    "concise": "{t}: decide.",
    "professional": "From a business perspective, {t} needs a structured assessment.",
    "creative": "Imagine {t} as a festival of floating gardens.",
}


def rows(n_prompts: int) -> list[dict]:
    out = []
    for c in cases("ecliptica", n_prompts):
        t = c["prompt"].rstrip("?.! ").lower()
        out.append({**c, "condition": "instructed", "response": STYLE[c["instruction_type"]].format(t=t)})
    return out


@pytest.fixture
def counted(monkeypatch):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(len(args[0]))
        return identifiability(*args, **kwargs)

    monkeypatch.setattr(score_mod, "identifiability", wrapper)
    return calls


def test_all_valid_rows_fit_identifiability_once(tmp_path, counted):
    run = write_run(tmp_path / "allvalid", rows(8))
    m = score_mod.score_run(run, n_boot=200, seed=3, embedder_obj=Embedder())
    block = m["suites"]["ecliptica"]["conditions"]["instructed"]
    sig = block["signals"]
    assert sig["valid_rate"]["value"] == 1.0
    assert counted == [80]  # one fit: the valid-rows refit reused it
    # and it is what a refit would give: the same out-of-fold accuracy and the same CI
    assert sig["identifiability_valid"] == sig["identifiability"]
    E = Embedder().encode([r["response"] for r in rows(8)])
    keys = [f"ecliptica/{r['prompt_id']}" for r in rows(8)]
    refit = identifiability(E, [r["instruction_type"] for r in rows(8)], keys, seed=3)
    assert sig["identifiability_valid"]["value"] == pytest.approx(float(np.mean(refit.correct)), abs=0)
    steps = m["scoring"]["seconds_by_step"]
    assert {"embedding", "validity", "identifiability", "metrics_and_bootstrap"} <= set(steps)
    assert all(v >= 0 for v in steps.values())


def test_an_invalid_row_refits_on_the_valid_rows(tmp_path, counted):
    data = rows(8)
    data[0] = {**data[0], "response": ""}  # empty: invalid, so the valid rows are 79
    run = write_run(tmp_path / "oneinvalid", data)
    m = score_mod.score_run(run, n_boot=200, seed=3, embedder_obj=Embedder())
    assert m["suites"]["ecliptica"]["conditions"]["instructed"]["signals"]["valid_rate"]["value"] == pytest.approx(79 / 80)
    assert counted == [80, 79]
