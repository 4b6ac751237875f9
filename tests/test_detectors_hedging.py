"""The hedging detector's loaders and training (detectors/hedging.py) on tiny synthetic fixtures written
here (no external rows in the repository), and the shipped weights on the phrasings issue 23 names."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ecliptica_bench import detectors
from ecliptica_bench.detectors import hedging
from ecliptica_bench.detectors.learned import LearnedDetector
from ecliptica_bench.errors import EclipticaError

HEDGED = [
    ('It <ccue type="speculation_modal_probable_">may</ccue> bind the receptor.', True),
    ('The king was <ccue type="speculation_hypo_doxastic _">thought</ccue> to be ill.', True),
]
CONFIDENT = [
    ('We <ccue type="speculation_hypo_investigation _">examined whether</ccue> it binds.', False),
    ('<ccue type="speculation_hypo_condition _">If</ccue> heated, water boils.', False),
    ("The river is 300 km long.", False),
]


def _doc(did: str, sentences) -> str:
    body = "".join(f'<Sentence id="S1.{i + 2}">{s}</Sentence>' for i, (s, _) in enumerate(sentences))
    return (
        f'<Document type="Wikipedia_text_weasel"><DocID type="WIKIPEDIA_ARTICLE_ID">{did}</DocID>'
        f'<DocumentPart type="Title"><Sentence id="S1.1">Title of {did}</Sentence></DocumentPart>'
        f'<DocumentPart type="Text">{body}</DocumentPart></Document>'
    )


def write_szeged(folder, n_docs: int = 1):
    for path in hedging.SOURCES["szeged"]["files"]:
        docs = "".join(_doc(f"doc{i}", HEDGED + CONFIDENT if i % 2 == 0 else CONFIDENT + HEDGED) for i in range(n_docs))
        (folder / path.rsplit("/", 1)[1]).write_text(
            f'<?xml version="1.0" encoding="UTF-8"?><Annotation><DocumentSet>{docs}</DocumentSet></Annotation>',
            encoding="utf-8",
        )


WEAK = ["I cannot say for certain", "I'm not sure", "It could be", "Not 100% sure"]
STRONG = ["I am certain", "Undoubtedly", "I know", "Confidence level: high"]


def write_ember(folder):
    def qa(reader):
        return [
            {
                "question": f"q{i}",
                f"answer_{reader}_str": f"{s}: the answer is Paris {i}.",
                f"answer_{reader}_weak": f"{w}, but the answer is Paris {i}.",
                f"answer_{reader}_plain": f"The answer is Paris {i}.",
                "str": s,
                "weak": w,
            }
            for i, (w, s) in enumerate(zip(WEAK, STRONG))
        ]

    (folder / "ember_qa_gpt4.json").write_text(json.dumps(qa("gpt4")), encoding="utf-8")
    (folder / "ember_qa_newbing.json").write_text(json.dumps(qa("newbing")), encoding="utf-8")
    rows = []
    for i, (w, s) in enumerate(zip(WEAK, STRONG)):
        row = {"output_1": f"Use a list {i}.", "output_2": f"Use a dict {i}.", "str": s, "weak": w}
        for k in "12":
            row[f"output_{k}_str"] = f"{s}, {row[f'output_{k}']}"
            row[f"output_{k}_weak"] = f"{w}, {row[f'output_{k}']}"
        rows.append(row)
    (folder / "ember_if.json").write_text(json.dumps(rows), encoding="utf-8")


def fake_embed(texts):
    """Deterministic unit vectors from each text's hash (no model)."""
    out = np.array([np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=384) for t in texts])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_szeged_labels_follow_the_cue_types_and_runs_take_any_hedge(tmp_path):
    write_szeged(tmp_path)
    texts, labels, groups = hedging.load_szeged(tmp_path)
    got = dict(zip(texts, labels))
    assert got["It may bind the receptor."] and got["The king was thought to be ill."]
    assert not got["We examined whether it binds."] and not got["If heated, water boils."]
    assert not any(t.startswith("Title of") for t in texts)  # titles left out
    # one document of 5 sentences per file: 5 single sentences + 2 runs of 2 + 1 run of 3
    assert len(texts) == 4 * (5 + 2 + 1)
    run = "It may bind the receptor. The king was thought to be ill."
    assert got[run] and not got["We examined whether it binds. If heated, water boils."]
    assert set(groups) == {f"{p.rsplit('/', 1)[1][:-4]}:doc0" for p in hedging.SOURCES["szeged"]["files"]}


def test_ember_levels_map_to_hedged_and_confident_and_markers_split_in_halves(tmp_path):
    write_ember(tmp_path)
    e = hedging.load_ember(tmp_path)
    assert len(e.texts) == 2 * 4 * 3 + 4 * 2 * 3
    for y, lv, m in zip(e.labels, e.levels, e.markers):
        assert y == (lv == "weak") and (m == "") == (lv == "plain")
    assert set(e.parts) == {"qa-gpt4", "qa-newbing", "if"}
    assert "I cannot say for certain, but the answer is Paris 0." in e.texts
    train = hedging.marker_split(e)
    assert len(train & set(WEAK)) == 2 and len(train & set(STRONG)) == 2 and train == hedging.marker_split(e)
    sz = (["s1", "s2"], np.array([True, False]), ["wiki:d1", "wiki:d2"])
    masks = {k: m[2:] for k, m in hedging.subsets(sz, e).items()}  # the EMBER rows
    pick = lambda m, seq: {x for x, keep in zip(seq, m) if keep}  # noqa: E731
    assert pick(masks["train"], e.parts) == {"if"} and pick(masks["ember-qa-unseen"], e.parts) == {"qa-gpt4", "qa-newbing"}
    assert not (pick(masks["ember-qa-unseen"], e.markers) & train)  # evaluated phrasings are never trained on
    assert pick(masks["ember-qa-seen"], e.markers) <= train and "" in pick(masks["ember-qa-unseen"], e.markers)
    assert masks["train"].sum() == 4 * 2 + 2 * 2 * 2  # plain IF answers + the training markers'
    assert not (masks["train"] & (masks["ember-qa-unseen"] | masks["ember-qa-seen"])).any()


def test_bad_or_missing_source_files_are_one_clear_error(tmp_path):
    with pytest.raises(EclipticaError, match=r"wiki.xml: missing .*raw.githubusercontent.com/meyersbs/uncertainty/31f73c8"):
        hedging.load_szeged(tmp_path)
    write_szeged(tmp_path)
    (tmp_path / "bio_fly.xml").write_text("<Annotation><DocumentSet>", encoding="utf-8")
    with pytest.raises(EclipticaError, match="bio_fly.xml: not a readable Szeged XML"):
        hedging.load_szeged(tmp_path)
    write_ember(tmp_path)
    (tmp_path / "ember_if.json").write_text(json.dumps([{"question": "q"}]), encoding="utf-8")
    with pytest.raises(EclipticaError, match="ember_if.json row 0: neither an EMBER-QA nor an EMBER-IF row"):
        hedging.load_ember(tmp_path)
    bad = [{"answer_gpt4_str": "x", "answer_gpt4_weak": "", "str": "I know", "weak": "I'm not sure"}]
    (tmp_path / "ember_qa_gpt4.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(EclipticaError, match=r"ember_qa_gpt4.json row 0: empty or non-text answer \(weak\)"):
        hedging.load_ember(tmp_path)


def test_heldout_split_keeps_documents_whole_and_is_seeded():
    groups = [f"d{i // 3}" for i in range(300)]
    held = hedging.heldout_split(groups)
    assert 0.1 < held.mean() < 0.3
    for g in set(groups):
        assert len({h for h, gg in zip(held, groups) if gg == g}) == 1
    np.testing.assert_array_equal(held, hedging.heldout_split(groups))
    assert not np.array_equal(held, hedging.heldout_split(groups, seed=1))


def test_training_is_deterministic_loads_as_a_detector_and_reports_each_set(tmp_path):
    write_szeged(tmp_path, n_docs=10)
    write_ember(tmp_path)
    sz, em = hedging.load_szeged(tmp_path), hedging.load_ember(tmp_path)
    w1, rec = hedging.train(sz, em, fake_embed)
    w2, _ = hedging.train(sz, em, fake_embed)
    assert json.dumps(w1, sort_keys=True) == json.dumps(w2, sort_keys=True)
    assert w1["classes"] == ["confident", "hedged"] and len(w1["coef"][0]) == 384 + 1 + 2**14
    det = LearnedDetector(w1)
    assert det.name == hedging.NAME and det.kind == "hedging"
    pred = det.predict(em.texts, emb=fake_embed(em.texts))
    assert pred.shape == (len(em.texts),) and pred.dtype == bool
    sets = {"szeged-heldout", "ember-qa-unseen", "ember-qa-seen"}
    assert set(rec["validation"]) == sets == set(rec["keyword_validation"])
    unseen = rec["validation"]["ember-qa-unseen"]
    assert unseen["n"] == 2 * 4 * 3 - 2 * 2 * 2 and set(unseen["per_model"]) == {"qa-gpt4", "qa-newbing"}
    assert unseen["balanced_accuracy"] == pytest.approx((unseen["sensitivity"] + unseen["specificity"]) / 2)
    assert rec["pooled"] == "ember-qa-unseen"
    t = rec["training"]
    assert t["n_train"] == t["n_train_szeged"] + t["n_train_ember_if"] and t["n_train_ember_if"] == 16
    assert t["n_train_szeged"] + t["n_heldout_szeged"] == len(sz[0])
    # without EMBER: Szeged only, pooled on its held-out documents
    _, rec0 = hedging.train(sz, None, fake_embed)
    assert set(rec0["validation"]) == {"szeged-heldout"} and rec0["pooled"] == "szeged-heldout"


ISSUE_HEDGES = [
    "I can't be certain, but I think it was Thomas Edison.",
    "I'm really not sure, but it may have been in 1912.",
    "It might have been the Romans who built it.",
    "I suspect the answer is Canberra.",
    "If I'm not mistaken, the treaty was signed in Paris.",
    "I can't answer that with any certainty.",
]
CONFIDENT_ANSWERS = [
    "The capital of Australia is Canberra.",
    "Heisenberg's uncertainty principle states that position and momentum cannot both be known exactly.",
    "Water boils at 100 degrees Celsius at sea level.",
    "No, cracking your knuckles does not cause arthritis.",
]


@pytest.mark.skipif(not detectors.learned_available("hedging"), reason="no learned hedging weights shipped")
def test_shipped_detector_fires_on_the_issue_phrasings_and_not_on_confident_answers():
    det = detectors.get("hedging")
    assert det.name == hedging.NAME
    assert det.predict(ISSUE_HEDGES).all(), dict(zip(ISSUE_HEDGES, det.predict(ISSUE_HEDGES)))
    assert not det.predict(CONFIDENT_ANSWERS).any(), dict(zip(CONFIDENT_ANSWERS, det.predict(CONFIDENT_ANSWERS)))


def test_registered_with_build_detectors_and_its_trainer_fits_the_training_rows_only(tmp_path):
    from ecliptica_bench.detectors import build

    kb = build._registry()["hedging"]
    assert kb.name == hedging.NAME and kb.pooled == "ember-qa-unseen"
    assert [s.name for s in kb.sources] == ["szeged", "ember"] and "keyword:hedging" in kb.references
    assert all(len(sha) == 64 and s.commit in s.url(p) for s in kb.sources for p, sha in s.files)
    write_szeged(tmp_path, n_docs=10)
    write_ember(tmp_path)
    files = {s.name: {p: tmp_path / p.rsplit("/", 1)[1] for p, _ in s.files} for s in kb.sources}
    data = kb.load(files)
    assert set(data.subsets) == {"train", "szeged-heldout", "ember-qa-unseen", "ember-qa-seen"}
    assert set(np.unique(data.labels)) == {"hedged", "confident"}
    data.emb = fake_embed(data.texts)
    weights, validation, hyper = kb.train(data, kb.features, kb.name, seed=0)
    assert set(validation) == {"szeged-heldout", "ember-qa-unseen", "ember-qa-seen"}
    assert hyper["training_rows"] == int(data.subsets["train"].sum())
    # the same rows through train() give the same weights: one training path
    w2, _ = hedging.train(hedging.load_szeged(tmp_path), hedging.load_ember(tmp_path), fake_embed)
    assert weights["coef"] == w2["coef"] and weights["intercept"] == w2["intercept"]
