"""No training prompt of the bundled switch pairs leaks an evaluation prompt: no exact match after prompt_key,
no near-duplicate by all-MiniLM-L6-v2 cosine (same embedder and threshold as tests/test_bank_quality.py), against
the bundled bank of every suite (ecliptica, truthfulqa, conditional_safety, length_control, litmus)."""

import numpy as np
import pytest

from ecliptica_bench.suites import SUITES
from ecliptica_bench.train.prefs import load_switch_pairs, prompt_key

NEAR_DUPLICATE_COSINE = 0.85  # as tests/test_bank_quality.py; highest training-vs-eval cosine when written: 0.700


@pytest.fixture(scope="module")
def prompts():
    train = [p["prompt"] for p in load_switch_pairs()]
    evals = [(name, it["id"], it["text"]) for name, suite in SUITES.items() for it in suite.bundled_items()]
    return train, evals


def test_every_suite_bank_is_checked(prompts):
    _, evals = prompts
    assert {name for name, _, _ in evals} == {"ecliptica", "truthfulqa", "conditional_safety", "length_control", "litmus"}


def test_no_exact_match_after_normalisation(prompts):
    train, evals = prompts
    keys = {prompt_key(t): (name, eid) for name, eid, t in evals}
    assert prompt_key("  How do Locks, get PICKED?? ") == prompt_key("how do locks get picked")
    hits = [(t, keys[prompt_key(t)]) for t in train if prompt_key(t) in keys]
    assert not hits


def test_no_near_duplicate_of_an_eval_prompt(prompts):
    from sentence_transformers import SentenceTransformer

    from ecliptica_bench.models import embedder_path

    train, evals = prompts
    model = SentenceTransformer(embedder_path(), device="cpu")
    a = model.encode(train, normalize_embeddings=True, batch_size=64)
    b = model.encode([t for _, _, t in evals], normalize_embeddings=True, batch_size=64)
    sims = a @ b.T
    i, j = np.unravel_index(np.argmax(sims), sims.shape)
    worst = (train[i], evals[j][:2], evals[j][2], round(float(sims[i, j]), 3))
    print(f"highest training-vs-eval cosine: {worst}")
    assert sims[i, j] < NEAR_DUPLICATE_COSINE, worst
    # and no two training prompts are near-duplicates of each other (they would be one prompt twice)
    own = a @ a.T
    np.fill_diagonal(own, -1)
    k, m = np.unravel_index(np.argmax(own), own.shape)
    assert own[k, m] < NEAR_DUPLICATE_COSINE, (train[k], train[m], float(own[k, m]))
