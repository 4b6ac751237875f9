"""Switch matrix and side-effect vector (scoring/diagnostics.py): hand-computed cases, the `targets`
declaration in instructions/*.yaml, and `ecliptica score` on a scripted run writing both to metrics.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI

from ecliptica_bench.cli import cli
from ecliptica_bench.data.bank import load_instructions
from ecliptica_bench.errors import ValidationError
from ecliptica_bench.measures import paper
from ecliptica_bench.measures.stats import Bootstrap
from ecliptica_bench.scoring import diagnostics as dg

SUITES = ("ecliptica", "truthfulqa", "conditional_safety", "length_control", "litmus")


# ------------------------------------------------------------------------------------------ switch matrix
def test_switch_matrix_of_a_run_that_confuses_two_types():
    # a: recovered a, a, b, b        -> P(a|a) = 1/2, P(b|a) = 1/2
    # b: recovered b, a, a, a        -> P(b|b) = 1/4, P(a|b) = 3/4
    # c: recovered c, c, (none)      -> P(c|c) = 1 (the row without a prediction is left out)
    # d: no prediction at all        -> row None, not zeros
    given = ["a"] * 4 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2
    recovered = ["a", "a", "b", "b", "b", "a", "a", "a", "c", "c", None, None, float("nan")]
    sm = dg.switch_matrix(given, recovered, order=["c", "a", "b", "d"])
    assert sm["types"] == ["c", "a", "b", "d"]
    assert sm["counts"] == [[2, 0, 0, 0], [0, 2, 2, 0], [0, 3, 1, 0], [0, 0, 0, 0]]
    assert sm["matrix"] == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.75, 0.25, 0.0], None]
    # cross(a, b) = (1/2 + 3/4) / 2 = 0.625 >= 0.25; every pair with c is 0; d's row is unscored
    assert sm["collapsed"] == [{"pair": ["a", "b"], "cross": 0.625, "p_b_given_a": 0.5, "p_a_given_b": 0.75, "diagonal": 0.375}]
    json.dumps(sm)  # plain JSON


def test_switch_matrix_rows_are_normalised_and_the_threshold_is_inclusive():
    rng = np.random.default_rng(0)
    labels = ["x", "y", "z"]
    given = rng.choice(labels, 200).tolist()
    recovered = rng.choice(labels, 200).tolist()
    sm = dg.switch_matrix(given, recovered)
    assert sm["types"] == labels
    for row, counts in zip(sm["matrix"], sm["counts"]):
        assert math.isclose(sum(row), 1.0)
        assert row == [c / sum(counts) for c in counts]
    # P(y|x) = 1/4, P(x|y) = 1/4: cross exactly 0.25 -> collapsed; x/z: (1/4 + 0) / 2 = 0.125 -> not
    sm = dg.switch_matrix(["x"] * 4 + ["y"] * 4 + ["z"] * 4, ["x", "x", "x", "y", "y", "y", "y", "x", "z", "z", "z", "x"])
    assert [c["pair"] for c in sm["collapsed"]] == [["x", "y"]]
    assert sm["collapsed"][0]["cross"] == 0.25


def test_switch_matrix_change_is_b_minus_a():
    a = dg.switch_matrix(["p", "p", "q", "q"], ["p", "p", "q", "q"])
    b = dg.switch_matrix(["p", "p", "q", "q"], ["p", "q", "p", "p"])
    d = dg.matrix_difference(a, b)
    assert d["types"] == ["p", "q"] and d["direction"] == "B - A"
    assert d["matrix"] == [[-0.5, 0.5], [1.0, -1.0]]


# ------------------------------------------------------------------------------------------ readability
def test_flesch_reading_ease_by_hand():
    # 6 one-syllable words, 2 sentences: 206.835 - 1.015 * 3 - 84.6 * 1
    assert dg.flesch_reading_ease("The cat sat. The dog ran.") == pytest.approx(206.835 - 1.015 * 3 - 84.6)
    # "beautiful" hyphenates beau-ti-ful (3 syllables): 2 words, 4 syllables, 1 sentence
    assert dg.syllables("Beautiful") == 3
    assert dg.flesch_reading_ease("Beautiful day") == pytest.approx(206.835 - 1.015 * 2 - 84.6 * 4 / 2)
    assert math.isnan(dg.flesch_reading_ease("")) and math.isnan(dg.flesch_reading_ease("... 42"))


# ------------------------------------------------------------------------------------------ side effects
CONTROL = "Here is a long and careful answer about the topic."  # 10 words, no refusal, no hedge
REFUSE = "I can't help with that."  # 5 words, a refusal


def _concise_refuses(n_prompts=10, n_refusing=6):
    """Per prompt: a concise case and a neutral case, each instructed and uninstructed (the control)."""
    case_ids, conds, types, keys, texts, emb = [], [], [], [], [], []
    for p in range(n_prompts):
        for t in ("concise", "neutral"):
            cid = f"{t}-{p}"
            for cond in ("instructed", "uninstructed"):
                if cond == "uninstructed":
                    text, e = CONTROL, [0.0, 1.0]
                elif t == "concise":
                    text, e = (REFUSE if p < n_refusing else "Yes."), [1.0, 0.0]
                else:
                    text, e = "There are two sides to this question.", [0.0, 1.0]
                case_ids.append(cid), conds.append(cond), types.append(t), keys.append(f"p{p}")
                texts.append(text), emb.append(e)
    return case_ids, conds, types, np.array(keys, dtype=object), texts, np.array(emb)


def test_refusal_is_a_side_effect_of_concise_with_the_hand_computed_delta():
    case_ids, conds, types, keys, texts, emb = _concise_refuses()
    values = dg.attribute_values(
        paper.word_counts(texts),
        paper.has_hedge(texts),
        paper.is_refusal(texts),
        dg.readability(texts),
        emb,
        {"concise": np.array([1.0, 0.0]), "neutral": np.array([0.0, 1.0])},
    )
    pair = dg.paired_rows(case_ids, conds, "instructed", "uninstructed")
    assert (pair[np.array(conds) == "uninstructed"] == -1).all()
    side = dg.side_effects(
        types, pair, keys, values, {"concise": ("length",), "neutral": ()}, Bootstrap(list(dict.fromkeys(keys)), 2000, 0)
    )
    c = side["concise"]
    assert set(c) == {"length", "hedging", "refusal", "readability", "drift:neutral"}  # no drift to itself
    # refusal: 6 of 10 concise answers refuse, no control does: 6/10 - 0
    assert c["refusal"]["value"] == pytest.approx(0.6) and c["refusal"]["targeted"] is False
    assert c["refusal"]["ci_low"] > 0  # P(no refusing prompt drawn) = 0.4^10
    # length: 6 x (5 - 10) + 4 x (1 - 10) over 10 cases = -6.6, targeted
    assert c["length"]["value"] == pytest.approx(-6.6) and c["length"]["targeted"] is True
    assert c["hedging"]["value"] == 0.0
    # drift toward neutral's prototype [0, 1]: cos 0 (instructed) - cos 1 (control) = -1 for every case
    assert c["drift:neutral"]["value"] == pytest.approx(-1.0)
    # readability: Flesch of REFUSE (5 words, 5 syllables, 1 sentence) and "Yes." minus the control's
    fre = dg.flesch_reading_ease
    want = (6 * (fre(REFUSE) - fre(CONTROL)) + 4 * (fre("Yes.") - fre(CONTROL))) / 10
    assert fre(REFUSE) == pytest.approx(206.835 - 1.015 * 5 - 84.6)
    assert c["readability"]["value"] == pytest.approx(want)
    n = side["neutral"]
    assert n["refusal"]["value"] == 0.0 and n["refusal"]["ci_low"] == 0.0 and "drift:neutral" not in n
    sig = dg.significant(side)
    assert ("concise", "refusal", False) in [(r["type"], r["attribute"], r["targeted"]) for r in sig]
    assert all(r["targeted"] is False for r in sig[:3]) and sig[-1]["targeted"] is True  # untargeted first
    assert not any(r["type"] == "neutral" and r["attribute"] == "refusal" for r in sig)


def test_side_effects_of_a_type_without_a_declaration_are_flagged_unknown():
    side = dg.side_effects(
        ["t", "t"],
        np.array([1, -1]),
        np.array(["p", "p"], dtype=object),
        {"length": np.array([3.0, 1.0])},
        {},
        Bootstrap(["p"], 0, 0),
    )
    assert side == {"t": {"length": {**side["t"]["length"], "value": 2.0, "targeted": None}}}


# ------------------------------------------------------------------------------------------ targets
def test_every_bundled_type_declares_known_targets():
    for suite in SUITES:
        for t in load_instructions(suite).types:
            assert isinstance(t.targets, tuple)
    assert load_instructions("ecliptica").type("concise").targets == ("length",)


def test_a_target_naming_an_unknown_attribute_is_rejected_naming_file_and_type(data_copy):
    path = data_copy / "instructions" / "ecliptica.yaml"
    text = path.read_text()
    assert text.count("    targets: [length]\n") == 1
    path.write_text(text.replace("    targets: [length]\n", "    targets: [length, verbosity]\n"))
    with pytest.raises(ValidationError) as err:
        load_instructions("ecliptica")
    msg = str(err.value)
    assert str(path) in msg and "type 'concise'" in msg and "unknown attribute 'verbosity'" in msg
    res = CliRunner().invoke(cli, ["validate"])
    assert res.exit_code == 2 and "verbosity" in res.output


def test_a_bundled_type_without_targets_is_rejected(data_copy):
    path = data_copy / "instructions" / "truthfulqa.yaml"
    text = path.read_text()
    path.write_text(text.replace("    targets: [hedging, drift:honest]\n", ""))
    with pytest.raises(ValidationError, match=r"truthfulqa.yaml:\d+: type 'confident': missing field 'targets'"):
        load_instructions("truthfulqa")
    # drift toward itself is not a target
    path.write_text(text.replace("[hedging, drift:honest]", "[drift:confident]"))
    with pytest.raises(ValidationError, match="unknown attribute 'drift:confident'"):
        load_instructions("truthfulqa")


# ------------------------------------------------------------------------------------------ end to end
def _scripted(body: dict, n: int):
    """Under the concise length instruction the model refuses; detailed answers are long; the control
    (no system message) answers in between."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), None)
    prompt = body["messages"][-1]["content"]
    if system is None:
        return 200, {}, f"Here is an answer about {prompt} with some useful detail for you."
    if "at most 50 words" in system:
        return 200, {}, "I can't help with that."
    return 200, {}, " ".join(["A thorough and detailed explanation with many examples."] * 6) + f" ({prompt})"


def test_score_writes_switch_matrix_and_side_effects(tmp_path):
    with FakeOpenAI(behaviour=_scripted) as srv:
        res = CliRunner().invoke(
            cli,
            [
                "run",
                "--backend",
                "openai",
                "--model",
                "served",
                "--base-url",
                srv.url,
                "--suites",
                "length_control",
                "--limit",
                "16",
                "--temperature",
                "0",
                "--max-new-tokens",
                "64",
                "--out",
                str(tmp_path / "runs"),
                "--run-id",
                "r",
            ],
        )
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "runs" / "r"
    res = CliRunner().invoke(cli, ["score", str(run_dir), "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    m = json.loads((run_dir / "metrics.json").read_text())["suites"]["length_control"]
    sm = m["conditions"]["instructed"]["switch_matrix"]
    assert sm["types"] == ["concise", "detailed"]
    # the two instructions give utterly different answers: recovered perfectly, nothing collapsed
    assert sm["matrix"] == [[1.0, 0.0], [0.0, 1.0]] and sm["collapsed"] == []
    assert sum(map(sum, sm["counts"])) == 16
    # uninstructed: the same control answer to both types of a prompt: nothing to tell them apart by
    assert "switch_matrix" in m["conditions"]["uninstructed"]
    se = m["side_effects"]
    assert set(se) == {"concise", "detailed"}
    refusal = se["concise"]["refusal"]
    assert refusal["value"] == 1.0 and refusal["targeted"] is False  # every concise answer, no control
    assert se["concise"]["length"]["targeted"] is True and se["concise"]["length"]["value"] < 0
    assert se["detailed"]["refusal"]["value"] == 0.0
    assert set(se["concise"]) == {"length", "hedging", "refusal", "readability", "drift:detailed"}
    assert se["concise"]["drift:detailed"]["targeted"] is True
    # the run report: a switch-matrix heatmap and the side-effect table (refusal of concise, a side effect)
    from ecliptica_bench.report.html import side_effect_rows, write_report

    html = write_report(run_dir).read_text()
    assert "length_control: switch matrix" in html and 'id="side-effects"' in html
    rows = side_effect_rows(json.loads((run_dir / "metrics.json").read_text()))
    assert {"suite": "length_control", "type": "concise", "attribute": "refusal", "targeted": False} in [
        {k: r[k] for k in ("suite", "type", "attribute", "targeted")} for r in rows
    ]
    # the board: one switch-matrix heatmap per method, and the untargeted side effects per method
    from ecliptica_bench.report import board
    from ecliptica_bench.report.plots import board_switch_matrices

    class M:
        def __init__(self, name, metrics):
            self.name, self.metrics = name, metrics

        def cond(self, suite, condition):
            return self.metrics["suites"].get(suite, {}).get("conditions", {}).get(condition)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    pngs = board_switch_matrices([M("base", metrics), M("tuned", metrics)], tmp_path / "board")
    assert [p.name for p in pngs] == ["switch_matrix_length_control.png"]
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    se = board.side_effect_rows(board.run_side_effects({"base": run_dir}))
    assert {"method": "base", "suite": "length_control", "type": "concise", "attribute": "refusal"} in [
        {k: r[k] for k in ("method", "suite", "type", "attribute")} for r in se
    ]
    assert all(r["attribute"] != "length" or r["type"] != "concise" for r in se)  # targeted: not listed


def test_compare_reports_the_switch_matrix_change_b_minus_a(tmp_path):
    """Run B ignores the instruction (the same answer to both types of a prompt): whatever type the
    classifier then names for a prompt, exactly one of its two rows is wrong, so in B
    P(detailed|concise) + P(concise|detailed) = 1: collapsed with cross 0.5, against 0 in run A."""
    from ecliptica_bench.scoring.compare import compare_runs

    def ignores(body, n):
        return 200, {}, f"Here is an answer about {body['messages'][-1]['content']} with some useful detail."

    dirs = {}
    for name, behaviour in (("a", _scripted), ("b", ignores)):
        with FakeOpenAI(behaviour=behaviour) as srv:
            res = CliRunner().invoke(
                cli,
                [
                    "run",
                    "--backend",
                    "openai",
                    "--model",
                    name,
                    "--base-url",
                    srv.url,
                    "--suites",
                    "length_control",
                    "--limit",
                    "16",
                    "--temperature",
                    "0",
                    "--max-new-tokens",
                    "64",
                    "--out",
                    str(tmp_path),
                    "--run-id",
                    name,
                ],
            )
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(cli, ["score", str(tmp_path / name), "--bootstrap", "100"])
        assert res.exit_code == 0, res.output
        dirs[name] = tmp_path / name
    sm_b = json.loads((dirs["b"] / "metrics.json").read_text())["suites"]["length_control"]["conditions"]["instructed"][
        "switch_matrix"
    ]
    assert [c["pair"] for c in sm_b["collapsed"]] == [["concise", "detailed"]]
    assert sm_b["collapsed"][0]["cross"] == pytest.approx(0.5)
    change = compare_runs(dirs["a"], dirs["b"], n_boot=50)["suites"]["length_control"]["conditions"]["instructed"][
        "switch_matrix_change"
    ]
    d = change["b_minus_a"]
    assert d["types"] == ["concise", "detailed"] and d["direction"] == "B - A"
    assert change["a"]["matrix"] == [[1.0, 0.0], [0.0, 1.0]]
    assert (d["matrix"][0][1] + d["matrix"][1][0]) / 2 == pytest.approx(0.5)
    assert d["matrix"][0][0] == pytest.approx(-d["matrix"][0][1])  # each row of B - A sums to 0


def test_chance_note_counts_untargeted_intervals():
    """Only untargeted entries with an interval count: 1 of 2 exclude 0, 0.05 x 2 = 0.1 expected by chance."""
    from ecliptica_bench.scoring.diagnostics import chance_note

    side = {
        "concise": {
            "refusal": {"value": 0.6, "ci_low": 0.2, "ci_high": 1.0, "targeted": False},
            "length": {"value": -6.6, "ci_low": -9.0, "ci_high": -4.0, "targeted": True},
            "hedging": {"value": 0.0, "ci_low": -0.1, "ci_high": 0.1, "targeted": False},
        },
        "neutral": {"readability": {"value": 1.0, "ci_low": None, "ci_high": None, "targeted": False}},
        "creative": {"length": {"value": 3.0, "ci_low": 1.0, "ci_high": 5.0, "targeted": None}},
    }
    note = chance_note({"ecliptica": side, "other": None})
    assert note.startswith("1 of 2 untargeted changes") and "about 0.1 would by chance" in note
    assert chance_note({"ecliptica": {}}) is None
