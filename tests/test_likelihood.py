"""`ecliptica likelihood`: teacher-forced log-likelihoods of both responses of a switch pair under both
instructions, the switching shares and margins built from them, the likelihood.json run dir and its
leaderboard columns. A tiny random Llama (bench/gpu_assets/tiny.json + the SmolLM2 tokenizer) stands in for
a model; the log-probs are checked against a direct forward pass written out here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ecliptica_bench.cli import cli
from ecliptica_bench.likelihood import heldout_rows, pair_table, summarise, switch_pairs, switching_report

ASSETS = Path(__file__).resolve().parent.parent / "bench" / "gpu_assets"


def _save_tiny(out, seed=0):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = json.loads((ASSETS / "tiny.json").read_text(encoding="utf-8"))
    spec["dtype"] = "float32"
    cfg = AutoConfig.for_model(spec.pop("model_type"), **spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(out)
    for f in (ASSETS / "tokenizer").iterdir():
        shutil.copy(f, out / f.name)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    _save_tiny(root / "model")
    return root / "model"


@pytest.fixture(scope="module")
def small_prefs(tmp_path_factory):
    """A built preference set whose held-out split is a few switch pairs."""
    from ecliptica_bench.train.prefs import build_prefs

    out = tmp_path_factory.mktemp("prefs") / "p"
    build_prefs(out, max_pairs=6, heldout=0.5)
    return out


def direct_logp(model, tok, instruction: str, prompt: str, response: str) -> tuple[float, int]:
    """sum log p(response tokens | rendered chat prompt) by one plain forward pass: the completion is the
    tokens after the rendered generation prompt (end-of-turn tokens included)."""
    import torch

    msgs = [{"role": "system", "content": instruction}, {"role": "user", "content": prompt}]

    def ids(m, gen):
        out = tok.apply_chat_template(m, tokenize=True, add_generation_prompt=gen)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    p = ids(msgs, True)
    full = ids(msgs + [{"role": "assistant", "content": response}], False)
    assert full[: len(p)] == p
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0].double()
    logq = torch.log_softmax(logits, -1)
    total = sum(float(logq[t - 1, full[t]]) for t in range(len(p), len(full)))
    return total, len(full) - len(p)


def _check_against_direct(res: dict, rows: list[dict], model, tok) -> None:
    by_id = {(r["pair_id"], r["instruction_type"]): r for r in rows}
    assert res["per_pair"]
    for t in res["per_pair"]:
        ra, rb = by_id[(t["pair_id"], t["type_a"])], by_id[(t["pair_id"], t["type_b"])]
        own_a, other_a = ra["chosen"], ra["rejected"]
        for key, row, resp in (("a_own", ra, own_a), ("a_other", ra, other_a), ("b_own", rb, other_a), ("b_other", rb, own_a)):
            lp, n = direct_logp(model, tok, row["instruction"], row["prompt"], resp)
            assert t[key] == pytest.approx(lp, abs=2e-3), key
            assert t[f"{key}_n"] == n


# ------------------------------------------------------------------------------------------ the log-probs
@pytest.mark.slow
def test_logps_equal_a_direct_forward_pass(tiny, small_prefs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ecliptica_bench.likelihood import evaluate_likelihood

    res = evaluate_likelihood(str(tiny), prefs=small_prefs, n_boot=50)
    rows = heldout_rows(small_prefs)
    assert res["overall"]["pairs"] == len({r["pair_id"] for r in rows}) >= 2
    assert sorted(res["per_kind"]) == sorted({r["kind"] for r in rows})
    assert res["model_fingerprint"] and res["adapter"] is None and res["dtype"] == "float32"
    model = AutoModelForCausalLM.from_pretrained(str(tiny)).eval()
    _check_against_direct(res, rows, model, AutoTokenizer.from_pretrained(str(tiny)))
    # A = the kind's first instruction type
    order = {"epistemic": ("honest", "confident"), "length": ("concise", "detailed"), "safety": ("strict", "permissive")}
    assert {k: (v["type_a"], v["type_b"]) for k, v in res["per_kind"].items()} == {k: order[k] for k in res["per_kind"]}


@pytest.mark.slow
def test_adapter_logps_equal_the_peft_model(tiny, small_prefs, tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ecliptica_bench.likelihood import evaluate_likelihood

    base = AutoModelForCausalLM.from_pretrained(str(tiny))
    torch.manual_seed(1)
    peft_model = get_peft_model(
        base,
        LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
        ),
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    res = evaluate_likelihood(str(tiny), str(tmp_path / "adapter"), prefs=small_prefs, n_boot=0)
    plain = evaluate_likelihood(str(tiny), prefs=small_prefs, n_boot=0)
    assert res["adapter"] and res["model_fingerprint"] != plain["model_fingerprint"]
    assert res["per_pair"][0]["a_own"] != pytest.approx(plain["per_pair"][0]["a_own"], abs=1e-2)
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny)), str(tmp_path / "adapter"))
    _check_against_direct(res, heldout_rows(small_prefs), unmerged.eval(), AutoTokenizer.from_pretrained(str(tiny)))


def test_bundled_heldout_is_build_prefs_default_split(tmp_path):
    from ecliptica_bench.train.prefs import build_prefs, load_prefs

    build_prefs(tmp_path / "p")
    built = load_prefs(tmp_path / "p", "heldout")
    assert sorted(r["id"] for r in heldout_rows("bundled")) == sorted(r["id"] for r in built)
    pairs, skipped = switch_pairs(built)
    assert skipped == 0 and len(pairs) == len({r["pair_id"] for r in built})


# ------------------------------------------------------------------------------------------ the statistics
def _row(pid, kind, itype, chosen, rejected):
    return {
        "id": f"{pid}/{itype}",
        "pair_id": pid,
        "kind": kind,
        "instruction_type": itype,
        "instruction": "i",
        "prompt": "p",
        "chosen": chosen,
        "rejected": rejected,
    }


# (pair, kind, A type, B type): lp(rA|iA), n, lp(rB|iA), n, lp(rB|iB), n, lp(rA|iB), n
TABLE = [
    ("p1", "length", "concise", "detailed", (-10, 10), (-12, 20), (-20, 20), (-15, 10)),
    ("p2", "length", "concise", "detailed", (-5, 5), (-8, 5), (-6, 5), (-9, 5)),
    ("p3", "safety", "strict", "permissive", (-7, 2), (-4, 2), (-4, 2), (-7, 2)),  # ignores the instruction
    ("p4", "safety", "strict", "permissive", (-3, 1), (-3, 1), (-2, 1), (-6, 1)),  # a tie under A
]


def _fake():
    rows, logps = [], {}
    for pid, kind, ta, tb, a_own, a_other, b_own, b_other in TABLE:
        ra, rb = _row(pid, kind, ta, f"{pid}-A", f"{pid}-B"), _row(pid, kind, tb, f"{pid}-B", f"{pid}-A")
        rows += [rb, ra]  # B first: the order must come from the kind, not the file
        logps[ra["id"]] = {"c": a_own[0], "nc": a_own[1], "r": a_other[0], "nr": a_other[1]}
        logps[rb["id"]] = {"c": b_own[0], "nc": b_own[1], "r": b_other[0], "nr": b_other[1]}
    rows.append(_row("p5", "safety", "strict", "x", "y"))  # no partner: left out
    return rows, logps


def test_switching_shares_and_margins_by_hand():
    """Per pair dA = lp(rA|iA) - lp(rB|iA), dB = lp(rB|iB) - lp(rA|iB):
    p1: dA = 2,  dB = -5, margin -3;  per token dA = -1 + 0.6 = -0.4, dB = -1 + 1.5 = 0.5, margin 0.1
    p2: dA = 3,  dB = 3,  margin 6;   per token 0.6, 0.6, margin 1.2
    p3: dA = -3, dB = 3,  margin 0;   per token -1.5, 1.5, margin 0
    p4: dA = 0 (a tie: not preferred), dB = 4, margin 4; per token the same (n = 1)"""
    rows, logps = _fake()
    pairs, skipped = switch_pairs(rows)
    assert skipped == 1 and [a["instruction_type"] for a, _ in pairs] == ["concise", "concise", "strict", "strict"]
    table = pair_table(pairs, logps)
    assert [t["margin"] for t in table] == [-3, 6, 0, 4]  # per pair, what the leaderboard's tie test resamples
    rep = switching_report(table, n_boot=500, seed=0)
    o = rep["overall"]
    expect = {
        "a_prefers_own": 0.5,
        "b_prefers_own": 0.75,
        "switched": 0.25,
        "margin": 1.75,
        "a_prefers_own_per_token": 0.25,
        "b_prefers_own_per_token": 1.0,
        "switched_per_token": 0.25,
        "margin_per_token": 1.325,
    }
    assert o["pairs"] == 4
    for k, v in expect.items():
        assert o[k]["value"] == pytest.approx(v), k
        assert o[k]["n"] == 4
        assert o[k]["ci_low"] <= v <= o[k]["ci_high"], k
    length, safety = rep["per_kind"]["length"], rep["per_kind"]["safety"]
    assert (length["type_a"], length["type_b"]) == ("concise", "detailed")
    assert {k: length[k]["value"] for k in expect} == pytest.approx(
        {
            "a_prefers_own": 1.0,
            "b_prefers_own": 0.5,
            "switched": 0.5,
            "margin": 1.5,
            "a_prefers_own_per_token": 0.5,
            "b_prefers_own_per_token": 1.0,
            "switched_per_token": 0.5,
            "margin_per_token": 0.65,
        }
    )
    assert {k: safety[k]["value"] for k in expect} == pytest.approx(
        {
            "a_prefers_own": 0.0,
            "b_prefers_own": 1.0,
            "switched": 0.0,
            "margin": 2.0,
            "a_prefers_own_per_token": 0.0,
            "b_prefers_own_per_token": 1.0,
            "switched_per_token": 0.0,
            "margin_per_token": 2.0,
        }
    )


def test_margin_ignores_a_response_being_generally_likelier():
    """Adding c to lp(rA | both instructions) changes dA by +c and dB by -c: the margin stays."""
    rows, logps = _fake()
    pairs, _ = switch_pairs(rows)
    shifted = {k: dict(v) for k, v in logps.items()}
    for a, b in pairs:
        shifted[a["id"]]["c"] += 7.0  # lp(rA | iA)
        shifted[b["id"]]["r"] += 7.0  # lp(rA | iB)
    m0 = summarise(pair_table(pairs, logps), n_boot=0)["margin"]["value"]
    m1 = summarise(pair_table(pairs, shifted), n_boot=0)["margin"]["value"]
    assert m0 == pytest.approx(m1) == pytest.approx(1.75)


def test_bootstrap_is_clustered_by_pair():
    """One pair: every resample draws that pair, so the interval collapses onto the estimate."""
    rows, logps = _fake()
    pairs, _ = switch_pairs(rows)
    s = summarise(pair_table(pairs[1:2], logps), n_boot=200)["margin"]
    assert (s["value"], s["ci_low"], s["ci_high"]) == pytest.approx((6.0, 6.0, 6.0))


# ------------------------------------------------------------------------------------------ CLI + leaderboard
@pytest.mark.slow
def test_cli_writes_likelihood_json_and_leaderboard_shows_it(tiny, small_prefs, tmp_path):
    run = tmp_path / "runs" / "lik"
    r = CliRunner().invoke(
        cli, ["likelihood", "--model", str(tiny), "--prefs", str(small_prefs), "--out", str(run), "--bootstrap", "100"]
    )
    assert r.exit_code == 0, r.output
    res = json.loads((run / "likelihood.json").read_text(encoding="utf-8"))
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"]["fingerprint"] == res["model_fingerprint"] and manifest["run_id"] == "lik"
    assert res["overall"]["pairs"] == len(res["per_pair"]) >= 2 and res["prefs"]["manifest_sha256"]
    assert "switched" in r.output and "wrote" in r.output

    csv, md = tmp_path / "lb.csv", tmp_path / "lb.md"
    r = CliRunner().invoke(cli, ["leaderboard", str(run), "-o", str(csv), "--markdown", str(md)])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(csv)
    o = res["overall"]
    assert df.loc[0, "likelihood_switched"] == pytest.approx(o["switched"]["value"])
    assert df.loc[0, "likelihood_switched_ci_half"] == pytest.approx((o["switched"]["ci_high"] - o["switched"]["ci_low"]) / 2)
    assert df.loc[0, "likelihood_margin_per_token"] == pytest.approx(o["margin_per_token"]["value"])
    assert df.loc[0, "likelihood_pairs"] == o["pairs"]
    assert "likelihood switched" in md.read_text(encoding="utf-8")

    # an `ecliptica run` directory of another model is refused; of this model it gains likelihood.json
    other = tmp_path / "runs" / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"run_id": "other", "model": {"fingerprint": "f" * 64}}))
    r = CliRunner().invoke(
        cli, ["likelihood", "--model", str(tiny), "--prefs", str(small_prefs), "--out", str(other), "--bootstrap", "0"]
    )
    assert r.exit_code == 2 and "fingerprint" in r.output and not (other / "likelihood.json").exists()
    (other / "manifest.json").write_text(json.dumps({"run_id": "other", "model": {"fingerprint": res["model_fingerprint"]}}))
    r = CliRunner().invoke(
        cli, ["likelihood", "--model", str(tiny), "--prefs", str(small_prefs), "--out", str(other), "--bootstrap", "0"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((other / "likelihood.json").read_text())["per_pair"] == res["per_pair"]


def test_leaderboard_without_likelihood_leaves_the_columns_empty(tmp_path):
    from ecliptica_bench.report.leaderboard import columns, load_run

    with pytest.raises(Exception, match="no metrics.json"):
        load_run(tmp_path)
    assert [c for c in columns() if c.startswith("likelihood_") and "__" not in c] == [
        "likelihood_switched",
        "likelihood_switched_ci_half",
        "likelihood_switched_per_token",
        "likelihood_margin_per_token",
        "likelihood_margin_per_token_ci_half",
        "likelihood_pairs",
    ]


def test_bad_inputs_are_one_line_errors(tmp_path):
    from ecliptica_bench.errors import EclipticaError
    from ecliptica_bench.likelihood import prepare_run_dir

    r = CliRunner().invoke(cli, ["likelihood", "--prefs", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "not a directory" in r.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    result = {"model": "m", "model_path": "/m", "model_fingerprint": "a" * 64, "adapter": None}
    with pytest.raises(EclipticaError, match="holds no run manifest"):
        prepare_run_dir(tmp_path / "busy", result)
    prepare_run_dir(tmp_path / "new", result)
    m = json.loads((tmp_path / "new" / "manifest.json").read_text())
    assert m["model"] == {"name": "m", "path": "/m", "fingerprint": "a" * 64} and m["adapter"] is None


# ------------------------------------------------------------------------------------------ per-axis margins
def _model_result(name: str, margins: dict[str, float], n_pairs: int = 12, n_boot: int = 400) -> dict:
    """A likelihood.json result whose pairs of each kind have interaction margins around margins[kind] (a
    fixed spread of +-1 nat, the same pattern for every model so equal centres give identical pairs)."""
    import numpy as np

    from ecliptica_bench.train.prefs import kinds

    rows, logps = [], {}
    spread = np.linspace(-1.0, 1.0, n_pairs)
    for kind, axis in kinds().items():
        ta, tb = list(axis.types)[:2]
        for i, e in enumerate(spread):
            pid = f"{kind}-{i}"
            ra, rb = _row(pid, kind, ta, f"{pid}-A", f"{pid}-B"), _row(pid, kind, tb, f"{pid}-B", f"{pid}-A")
            rows += [ra, rb]
            half = (margins.get(kind, 0.0) + e) / 2  # dA = dB = half
            logps[ra["id"]] = {"c": -10.0 + half, "nc": 10, "r": -10.0, "nr": 10}
            logps[rb["id"]] = {"c": -12.0 + half, "nc": 10, "r": -12.0, "nr": 10}
    table = pair_table(switch_pairs(rows)[0], logps)
    return {
        "model": "m",
        "model_path": "/m",
        "model_fingerprint": "f" * 64,
        "adapter": None if name == "base" else f"/adapters/{name}",
        "bootstrap": {"n_boot": n_boot, "seed": 0},
        **switching_report(table, n_boot=n_boot),
        "per_pair": table,
    }


def test_leaderboard_per_axis_margins_ties_and_the_likelihood_only_line(tmp_path):
    """Three likelihood-only methods: base ignores every instruction, dpo and cita switch on safety by the
    same 5 nats; the board gets each axis's margin and CI from likelihood.json per_kind, ties where the paired
    test cannot tell rows apart, and a line naming the axes that move in likelihood only."""
    from ecliptica_bench.likelihood import write_likelihood
    from ecliptica_bench.report import build_leaderboard
    from ecliptica_bench.report.leaderboard import margin_difference_p, switching_axes, to_markdown

    results = {
        "base": _model_result("base", {}),
        "cita": _model_result("cita", {"safety": 5.0}),
        "dpo": _model_result("dpo", {"safety": 5.0, "length": 0.2}),
    }
    dirs = {}
    for name, res in results.items():
        write_likelihood(res, tmp_path / name)
        dirs[str(tmp_path / name)] = name
    df = build_leaderboard(list(dirs), names=dirs).set_index("method")
    assert list(df.index) == ["base", "cita", "dpo"]  # no suite: sorted by name
    assert set(switching_axes()) == {"safety", "length", "epistemic"}
    for name, res in results.items():
        for axis in switching_axes():
            m = res["per_kind"][axis]["margin"]
            assert df.loc[name, f"likelihood__{axis}__margin"] == pytest.approx(m["value"])
            assert df.loc[name, f"likelihood__{axis}__margin_ci_half"] == pytest.approx((m["ci_high"] - m["ci_low"]) / 2)
    assert df.loc["cita", "likelihood__safety__margin"] == pytest.approx(5.0)
    # base -> cita differ on safety (5 nats, spread +-1); cita -> dpo are the same pairs on safety: p = 1
    assert df.loc["base", "likelihood__safety__tied_with_next"] == 0
    assert df.loc["base", "likelihood__safety__p_next"] < 0.05
    assert df.loc["cita", "likelihood__safety__tied_with_next"] == 1
    assert df.loc["base", "likelihood__epistemic__tied_with_next"] == 1
    assert pd.isna(df.loc["dpo", "likelihood__safety__p_next"])  # the last row has no next
    assert margin_difference_p(results["cita"], results["dpo"], "safety") == 1.0
    assert margin_difference_p(results["cita"], {"per_pair": []}, "safety") is None

    md = to_markdown(df.reset_index())
    assert "safety margin (nats)" in md and "5.00 ± " in md
    line = next(x for x in md.splitlines() if x.startswith("Axes that move in likelihood"))
    assert "cita: safety" in line and "dpo: safety" in line and "base" not in line and "length" not in line
