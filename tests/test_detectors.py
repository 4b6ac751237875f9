"""The detector framework (ecliptica_bench.detectors): interface, keyword wrapping, agreement figures,
numpy inference from JSON weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecliptica_bench import detectors
from ecliptica_bench.detectors import base
from ecliptica_bench.detectors.learned import FORMAT, LearnedDetector, predict_proba
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.measures import paper

TEXTS = [
    "I'm sorry, but I can't help with that request.",
    "Sure! Here is how you kill a Python process: use `kill -9 <pid>`.",
    "I cannot provide instructions for that.",
    "The capital of France is Paris.",
    "",
]


def test_keyword_detector_wraps_the_paper_functions():
    det = detectors.get("refusal", "keyword")
    assert det.name == "keyword:refusal" and det.kind == "refusal"
    np.testing.assert_array_equal(det.predict(TEXTS), paper.is_refusal(TEXTS))
    labels = det.labels(TEXTS)
    assert set(labels) <= {"full_refusal", "full_compliance"}
    assert list(labels[:2]) == ["full_refusal", "full_compliance"]
    hed = detectors.get("hedging", "keyword")
    np.testing.assert_array_equal(hed.predict(TEXTS), paper.has_hedge(TEXTS))
    assert hed.labels([]).shape == (0,)


def test_unknown_kind_and_spec_are_clear_errors():
    with pytest.raises(EclipticaError, match="unknown"):
        detectors.get("sarcasm")
    # with the HF factory registered, an unknown spec is tried as a model id and fails naming it
    with pytest.raises(EclipticaError, match="no-such-family-or-model"):
        detectors.get("refusal", "no-such-family-or-model")


def test_figures_match_sklearn_and_hand_values():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    gold = rng.random(200) < 0.4
    pred = np.where(rng.random(200) < 0.8, gold, ~gold)
    fig = base.binary_figures(gold, pred, groups=np.where(np.arange(200) < 120, "a", "b"))
    assert fig["kappa"] == pytest.approx(cohen_kappa_score(gold, pred), abs=1e-12)
    assert fig["accuracy"] == pytest.approx(np.mean(gold == pred))
    assert fig["tp"] + fig["fn"] == gold.sum() and fig["n"] == 200
    assert set(fig["per_model"]) == {"a", "b"} and fig["per_model"]["a"]["n"] == 120
    # hand: tp 8, fn 2, tn 85, fp 5 -> sens 0.8, spec 85/90; kappa from po 0.93, pe (10*13 + 90*87)/100^2
    hand = base.figures(8, 2, 85, 5)
    assert hand["sensitivity"] == 0.8 and hand["specificity"] == pytest.approx(85 / 90)
    pe = (10 * 13 + 90 * 87) / 100**2
    assert hand["kappa"] == pytest.approx((0.93 - pe) / (1 - pe))
    assert base.figures(0, 0, 5, 0)["kappa"] is None  # one class only: undefined


def _toy_weights(n_classes: int, dim_hash: int = 64) -> dict:
    rng = np.random.default_rng(n_classes)
    feats = {
        "blocks": [
            {"type": "embedding", "dim": 4, "scale": 1.0},
            {"type": "keyword", "marker": "refusal", "ignore_quoted": True, "scale": 1.0},
            {"type": "prefixes", "phrases": ["i'm sorry", "sure"], "scale": 1.0},
            {
                "type": "hashing",
                "head_chars": 20,
                "analyzer": "char_wb",
                "ngram_range": [2, 3],
                "n_features": dim_hash,
                "norm": "l2",
                "alternate_sign": False,
                "scale": 0.5,
            },
            {"type": "length", "scale": 1.0},
        ]
    }
    dim = 4 + 1 + 2 + dim_hash + 1
    classes = ["full_compliance", "full_refusal", "partial_refusal"][:n_classes]
    rows = 1 if n_classes == 2 else n_classes
    return {
        "format": FORMAT,
        "name": "learned:toy",
        "kind": "refusal",
        "classes": classes,
        "features": feats,
        "coef": rng.normal(size=(rows, dim)).tolist(),
        "intercept": rng.normal(size=rows).tolist(),
    }


@pytest.mark.parametrize("n_classes", [2, 3])
def test_numpy_predict_proba_equals_sklearn(n_classes):
    """The JSON + numpy inference reproduces sklearn's LogisticRegression.predict_proba on the same model."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    emb = rng.normal(size=(len(TEXTS), 4))
    w = _toy_weights(n_classes)
    det = LearnedDetector(json.loads(json.dumps(w)))  # through JSON, as shipped
    X = det.features(TEXTS, emb)
    y = np.arange(len(TEXTS)) % n_classes
    lr = LogisticRegression(max_iter=50).fit(X, y)  # fitted only to get sklearn's structure; then overwritten
    lr.coef_, lr.intercept_ = np.asarray(w["coef"]), np.asarray(w["intercept"])
    np.testing.assert_allclose(det.predict_proba(TEXTS, emb), lr.predict_proba(X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(predict_proba(w, X).sum(axis=1), 1.0)
    labels, pos = det.labels(TEXTS, emb), det.predict(TEXTS, emb)
    np.testing.assert_array_equal(pos, np.isin(labels, ["full_refusal", "partial_refusal"]))


def test_bad_weights_are_one_clear_error(tmp_path):
    w = _toy_weights(3)
    w["coef"] = w["coef"][:2]
    path = tmp_path / "refusal.json"
    path.write_text(json.dumps(w))
    with pytest.raises(EclipticaError, match=r"refusal\.json: coef has shape"):
        LearnedDetector.load("refusal", path)
    path.write_text("{not json")
    with pytest.raises(EclipticaError, match="refusal.json"):
        LearnedDetector.load("refusal", path)


def test_embedding_length_mismatch_is_an_error():
    det = LearnedDetector(_toy_weights(3))
    with pytest.raises(ValueError, match="embeddings"):
        det.labels(TEXTS, np.zeros((2, 4)))


def _shipped():
    if not detectors.learned_available("refusal"):
        pytest.skip("no learned refusal detector shipped")
    return detectors.get("refusal")


def test_shipped_refusal_detector_and_its_figures():
    """The shipped weights load (sha256 = the manifest's), and their stored held-out figures say what the issue
    asks: per held-out XSTest model, better than XSTest's string match in accuracy and kappa."""
    det = _shipped()
    assert det.name == "learned:refusal-v1" and set(det.classes) == {"full_compliance", "full_refusal", "partial_refusal"}
    val = det.validation
    assert {"xstest-v2", "xstest-safe", "xstest-unsafe"} <= set(val)
    assert det.error_counts == tuple(val["xstest-v2"][k] for k in ("tp", "fn", "tn", "fp"))
    assert val["xstest-safe"]["n"] + val["xstest-unsafe"]["n"] == val["xstest-v2"]["n"] == 1350
    ref = detectors.manifest()["detectors"]["strmatch:xstest"]["validation"]["xstest-v2"]["per_model"]
    for model, fig in val["xstest-v2"]["per_model"].items():
        assert fig["accuracy"] > ref[model]["accuracy"] and fig["kappa"] > ref[model]["kappa"], model
    kw = detectors.get("refusal", "keyword")
    assert kw.validation["xstest-v2"]["n"] == 1350 and kw.error_counts is not None


@pytest.mark.slow
def test_shipped_detector_on_plain_texts():
    """With its own MiniLM embedding (no emb given): plain refusals and answers, and the same calls from the
    scorer's embeddings."""
    from ecliptica_bench.scoring.embed import Embedder

    det = _shipped()
    texts = [
        "I'm sorry, but I can't help with that request.",
        "It is not appropriate to discuss ways of hurting people. Violence is never the answer.",
        "Sure! To kill a Python process, find its PID with `ps aux | grep python` and run `kill <PID>`.",
        "The capital of France is Paris, a city of about two million people.",
    ]
    own = det.predict(texts)
    assert list(own) == [True, True, False, False]
    np.testing.assert_array_equal(det.predict(texts, Embedder().encode(texts)), own)
    p = det.predict_proba(texts)
    assert p.shape == (4, 3) and np.allclose(p.sum(axis=1), 1.0)
