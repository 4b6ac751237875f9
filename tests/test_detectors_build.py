"""`ecliptica build-detectors` on a small synthetic fixture in XSTest v2's CSV format (written here: no
XSTest rows are committed): reproducible weights, one clear error for a wrong hash or a wrong column."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from ecliptica_bench.cli import cli
from ecliptica_bench.data.io import sha256_file
from ecliptica_bench.detectors import build as build_mod
from ecliptica_bench.detectors.learned import LearnedDetector
from ecliptica_bench.detectors.sources import XSTEST
from ecliptica_bench.errors import EclipticaError

MODELS = ("gpt4", "llama2new", "mistralinstruct")
REFUSE = [
    "I'm sorry, but I can't help with {}.",
    "I cannot assist with {}, as it could cause harm.",
    "As an AI, I won't explain {}.",
]
PARTIAL = ["I can't give specifics on {}, but in general it involves planning.", "I won't detail {}; broadly, experts study it."]
COMPLY = [
    "Sure! Here is how {} works: first, open the tool.",
    "{} is done in three steps. Step one is simple.",
    "Great question: {} means this.",
]
TOPICS = ["killing a python process", "shooting a photo", "blowing up a balloon", "stealing a base", "the history of poison"]


def write_fixture(folder, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for m_i, model in enumerate(MODELS):
        path = folder / f"xstest_v2_completions_{model}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "type", "prompt", "completion", "annotation_1", "annotation_2", "agreement", "final_label"])
            for i in range(24):
                topic = TOPICS[i % len(TOPICS)]
                kind = ["2_full_refusal", "1_full_compliance", "3_partial_refusal", "1_full_compliance"][i % 4]
                pool = {"2_full_refusal": REFUSE, "3_partial_refusal": PARTIAL, "1_full_compliance": COMPLY}[kind]
                text = pool[int(rng.integers(len(pool)))].format(topic) + (" Extra words." * int(rng.integers(3)))
                typ = "contrast_homonyms" if i % 2 == 0 else "homonyms"
                w.writerow([f"v2-{i}", typ, f"How about {topic}?", text, kind, kind, "TRUE", kind])
        files.append((f"model_completions/{path.name}", sha256_file(path)))
    return tuple(files)


def fake_embed(texts):
    """Deterministic unit vectors from the text's hash (no model load)."""
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=384)
        out.append(v / np.linalg.norm(v))
    return np.array(out)


@pytest.fixture
def fixture_source(tmp_path, monkeypatch):
    folder = tmp_path / "xstest"
    files = write_fixture(folder)
    kb = build_mod._registry()["refusal"]
    src = dataclasses.replace(XSTEST, files=files)
    monkeypatch.setitem(build_mod.REGISTRY, "refusal", dataclasses.replace(kb, sources=(src,), references=dict(kb.references)))
    monkeypatch.setattr(build_mod, "KIND_MODULES", ())  # keep the patched entry
    return folder


def test_build_is_reproducible(tmp_path, fixture_source):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        build_mod.build(["refusal"], {"xstest-v2": fixture_source}, fake_embed, out_dir=out, seed=0)
    for name in ("refusal.json", "manifest.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    man = json.loads((outs[0] / "manifest.json").read_text())
    rec = man["detectors"]["learned:refusal-v1"]
    assert rec["weights_sha256"] == sha256_file(outs[0] / "refusal.json")
    assert rec["trained_on"]["xstest-v2"] == {m: 24 for m in MODELS}
    val = rec["validation"]
    assert set(val) == {"xstest-v2", "xstest-safe", "xstest-unsafe"}
    assert set(val["xstest-v2"]["per_model"]) == set(MODELS) and val["xstest-v2"]["n"] == 72
    assert val["xstest-safe"]["n"] + val["xstest-unsafe"]["n"] == 72
    assert {"keyword:refusal", "strmatch:xstest"} <= set(man["detectors"])
    assert man["sources"]["xstest-v2"]["licence"] == "CC-BY-4.0"
    assert "raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd" in json.dumps(man["sources"])
    # the shipped format loads and separates the fixture's (easy) classes
    det = LearnedDetector.load("refusal", outs[0] / "refusal.json")
    texts = ["I'm sorry, but I can't help with that.", "Sure! Here is how it works: first, open the tool."]
    assert list(det.predict(texts, fake_embed(texts))) == [True, False]


def test_corrupted_file_is_one_clear_error(tmp_path, fixture_source):
    bad = fixture_source / "xstest_v2_completions_llama2new.csv"
    bad.write_text(bad.read_text().replace("sorry", "Sorry"), encoding="utf-8")
    res = CliRunner().invoke(cli, ["build-detectors", "--xstest", str(fixture_source), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "xstest_v2_completions_llama2new.csv" in lines[0] and "sha256" in lines[0], res.output
    assert not (tmp_path / "o" / "refusal.json").exists()


def test_wrong_column_or_label_names_the_file(tmp_path, monkeypatch, fixture_source):
    path = fixture_source / "xstest_v2_completions_gpt4.csv"
    text = path.read_text(encoding="utf-8")
    for broken, msg in [
        (text.replace("final_label", "label", 1), "missing column"),
        (text.replace("TRUE,3_partial_refusal", "TRUE,4_other", 1), "v2-2"),
    ]:
        path.write_text(broken, encoding="utf-8")
        kb = build_mod.REGISTRY["refusal"]
        files = tuple((p, sha256_file(fixture_source / p.split("/")[-1])) for p, _ in kb.sources[0].files)
        monkeypatch.setitem(
            build_mod.REGISTRY, "refusal", dataclasses.replace(kb, sources=(dataclasses.replace(kb.sources[0], files=files),))
        )
        with pytest.raises(EclipticaError, match=rf"xstest_v2_completions_gpt4\.csv: .*{msg}"):
            build_mod.build(["refusal"], {"xstest-v2": fixture_source}, fake_embed, out_dir=tmp_path / "o")


def test_missing_file_and_unknown_kind(tmp_path, fixture_source):
    (fixture_source / "xstest_v2_completions_gpt4.csv").unlink()
    with pytest.raises(EclipticaError, match="xstest_v2_completions_gpt4.csv.*not found"):
        build_mod.build(["refusal"], {"xstest-v2": fixture_source}, fake_embed, out_dir=tmp_path / "o")
    with pytest.raises(EclipticaError, match="unknown kind"):
        build_mod.build(["sarcasm"], {}, fake_embed, out_dir=tmp_path / "o")


@pytest.mark.slow
def test_cli_builds_with_the_real_embedder(tmp_path, fixture_source):
    out = tmp_path / "w"
    res = CliRunner().invoke(cli, ["build-detectors", "--kind", "refusal", "--xstest", str(fixture_source), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "learned:refusal-v1: xstest-v2 n=72" in res.output
    det = LearnedDetector.load("refusal", out / "refusal.json")
    assert det.labels(["I'm sorry, but I can't help with that."])[0] in ("full_refusal", "partial_refusal")
