"""The leaderboard over scored runs: schema, values, IAE, grouping, markdown, plots, CLI.

Run directories here are synthetic (`make_run_dir` writes metrics.json, manifest.json and scores.parquet
to the contract in the brief); the real pipeline is exercised by the demo / CI tests on real runs.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecliptica_bench.errors import EclipticaError, ValidationError
from ecliptica_bench.suites import SUITES

REPO = Path(__file__).resolve().parent.parent

# Typical magnitudes of each suite's headline metric (instructed, uninstructed).
DEFAULT_VALUES = {
    "ecliptica": (0.062, 0.048),
    "truthfulqa": (0.35, 0.05),
    "conditional_safety": (0.40, 0.10),
    "length_control": (3.1, 1.2),
    "litmus": (41.0, 37.0),
}


def _score(rng, value, n, spread=0.05):
    if value is None:
        return {"value": None, "ci_low": None, "ci_high": None, "n": n, "unscored_reason": "no valid rows"}
    half = abs(value) * spread + rng.uniform(0.005, 0.02)
    lo_w, hi_w = rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)  # CIs need not be symmetric
    return {"value": value, "ci_low": value - half * lo_w, "ci_high": value + half * hi_w, "n": n, "unscored_reason": None}


@functools.lru_cache(maxsize=None)
def _types(suite):
    return SUITES[suite].instructions().types


def headline_of(suite, value):
    """The headline value the fixtures give each condition: the paper value, but signed for
    conditional_safety (negative when the paper value is marked wrong-way, see WRONG_WAY) and a made-up
    absolute AQI for litmus."""
    if value is None:
        return None
    if suite == "litmus":
        return value / 2
    if suite == "conditional_safety" and value in WRONG_WAY:
        return -value
    return value


WRONG_WAY = {0.3}  # conditional_safety paper values whose signed switching is negative in the fixtures


def _condition_block(rng, suite, value, n, judge):
    types = [t.name for t in _types(suite)]
    per_type_metric = {
        "ecliptica": "fidelity",
        "truthfulqa": "hedge_rate",
        "conditional_safety": "refusal_rate",
        "length_control": "mean_words",
        "litmus": "refusal_rate",
    }[suite]
    base = {"fidelity": 0.55, "hedge_rate": 0.3, "refusal_rate": 0.4, "mean_words": 120.0}[per_type_metric]
    signals = {
        "valid_rate": _score(rng, rng.uniform(0.7, 1.0), n),
        "truncation_rate": _score(rng, rng.uniform(0.0, 0.2), n),
        "identifiability": _score(rng, rng.uniform(0.1, 0.6), n),
        "signed_switching": _score(
            rng, headline_of(suite, value) if suite in ("truthfulqa", "conditional_safety") else rng.uniform(-0.2, 0.5), n
        ),
        "echo_rate": _score(rng, rng.uniform(0.0, 0.1), n),
        "identifiability_valid": _score(rng, rng.uniform(0.1, 0.6), n),
        "judge_adherence_valid": _score(rng, rng.uniform(0.2, 0.9), n)
        if judge
        else {"value": None, "ci_low": None, "ci_high": None, "n": 0, "unscored_reason": "no judge"},
        "judge_adherence": _score(rng, rng.uniform(0.2, 0.9), n)
        if judge
        else {"value": None, "ci_low": None, "ci_high": None, "n": 0, "unscored_reason": "no judge"},
        "judge_unscored_rate": _score(rng, rng.uniform(0.0, 0.1), n)
        if judge
        else {"value": None, "ci_low": None, "ci_high": None, "n": 0, "unscored_reason": "no judge"},
    }
    headline = _score(rng, headline_of(suite, value), n)
    if suite not in ("conditional_safety", "litmus") and value is not None:
        paper = headline
    else:
        paper = _score(rng, value, n)
    return {
        "paper": paper,
        "paper_valid": _score(rng, None if value is None else value * rng.uniform(0.8, 1.1), n),
        "headline": headline,
        "headline_valid": _score(rng, None if value is None else headline_of(suite, value) * 0.9, n),
        "components": {"fidelity": _score(rng, 0.55, n), "shift": _score(rng, 0.1, n)}
        if suite == "ecliptica"
        else {"rate_a": _score(rng, rng.uniform(0, 1), n)},
        "signals": signals,
        "per_instruction_type": {t: {per_type_metric: _score(rng, base * rng.uniform(0.9, 1.1), n // len(types))} for t in types},
    }


HOSTILE = "<script>alert('pwned')</script> & <b>bold</b> \"quoted\""


def _scores_rows(rng, run_id, suite, conditions, judge, n_items=4):
    rows = []
    for t in _types(suite):
        for i in range(n_items):
            item = f"item{i:02d}"
            for cond in conditions:
                resp = f"Response to {item} under {t.name} ({cond}). " + (HOSTILE if i == 0 else "Some text.")
                row = {
                    "run_id": run_id,
                    "suite": suite,
                    "case_id": f"{suite}/{item}/{t.name}",
                    "prompt_id": i,
                    "item_id": item,
                    "condition": cond,
                    "instruction_type": t.name,
                    "prompt": f"Prompt {i} <with markup>?",
                    "instruction": t.variants[0],
                    "expected_characteristics": [c.name for c in t.characteristics],
                    "source": "synthetic",
                    "response": resp,
                    "finish_reason": "length" if i == 3 else "stop",
                    "prompt_tokens": 20,
                    "completion_tokens": 40,
                    "latency_s": 0.1,
                    "key": f"k-{suite}-{item}-{t.name}-{cond}",
                    "is_empty": False,
                    "is_looping": i == 2,
                    "is_off_topic": False,
                    "is_truncated": i == 3,
                    "valid": i < 2,
                    "fidelity": rng.uniform(0.5, 0.6),
                }
                if judge:
                    row.update(
                        {
                            "judge_adherence": i % 2 == 0,
                            "judge_verdict": "adheres" if i % 2 == 0 else "ignores",
                            "judge_rationale": f"Because <{t.name}> & reasons",
                        }
                    )
                rows.append(row)
    return rows


def make_run_dir(
    root: Path,
    run_id: str,
    *,
    model: str = "smollm2-135m",
    fingerprint: str = "fp-base",
    adapter: str | None = None,
    values: dict | None = None,
    conditions=("instructed", "uninstructed"),
    judge: bool = True,
    scores: bool = True,
    dataset_sha: str = "d" * 64,
    seed: int = 0,
    manifest_extra: dict | None = None,
) -> Path:
    """A scored run directory to the contract: metrics.json, manifest.json and (optionally) scores.parquet.

    `values` maps suite -> (instructed, uninstructed) headline values (default: every suite)."""
    rng = random.Random(seed)
    values = DEFAULT_VALUES if values is None else values
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True)
    suites = {}
    rows = []
    for suite, (vi, vu) in values.items():
        n = 40
        conds = {}
        if "instructed" in conditions:
            conds["instructed"] = _condition_block(rng, suite, vi, n, judge)
        if "uninstructed" in conditions:
            conds["uninstructed"] = _condition_block(rng, suite, vu, n, judge)
        delta = delta_paper = None
        if len(conds) == 2:
            both = vi is not None and vu is not None
            delta = _score(rng, headline_of(suite, vi) - headline_of(suite, vu) if both else None, n, spread=0.2)
            delta_paper = _score(rng, vi - vu if both else None, n, spread=0.2)
        suites[suite] = {
            "metric": {
                "ecliptica": "awareness",
                "truthfulqa": "epistemic_switching",
                "conditional_safety": "refusal_switching",
                "length_control": "length_ratio",
                "litmus": "aqi",
            }[suite],
            "headline_metric": {"conditional_safety": "refusal_switching_signed", "litmus": "aqi_absolute"}.get(suite, "same"),
            "conditions": conds,
            "delta": delta,
            "delta_paper": delta_paper,
        }
        rows += _scores_rows(rng, run_id, suite, list(conds), judge)
    metrics = {
        "run_id": run_id,
        "model": model,
        "model_fingerprint": fingerprint,
        "adapter": adapter,
        "dataset_sha": dataset_sha,
        "judge": {"model": "judge-7b", "template_version": "v1"} if judge else None,
        "embedder": "all-MiniLM-L6-v2",
        "bootstrap": 200,
        "suites": suites,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    manifest = {
        "run_id": run_id,
        "status": "complete",
        "model": {"name": model, "path": f"/cache/{model}", "fingerprint": fingerprint},
        "adapter": {"path": adapter} if adapter else None,
        "dataset_sha256": dataset_sha,
        **(manifest_extra or {}),
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if scores:
        pd.DataFrame(rows).to_parquet(run_dir / "scores.parquet", index=False)
    return run_dir


def schema_columns() -> list[str]:
    text = (REPO / "results" / "SCHEMA.md").read_text(encoding="utf-8")
    return re.findall(r"^- `([^`]+)`:", text, flags=re.M)


@pytest.fixture
def board_runs(tmp_path):
    """Three methods: A (one run, both conditions), B (a run pair, one condition each), C (an adapter run
    whose litmus has only the instructed condition, so no litmus Delta)."""
    a = make_run_dir(
        tmp_path,
        "run-a",
        fingerprint="fp-base",
        seed=1,
        values={
            "ecliptica": (0.07, 0.05),
            "truthfulqa": (0.30, 0.10),
            "conditional_safety": (0.5, 0.1),
            "length_control": (2.5, 1.1),
            "litmus": (42.0, 40.0),
        },
    )
    b_ins = make_run_dir(
        tmp_path,
        "run-b-ins",
        model="other-1b",
        fingerprint="fp-other",
        seed=2,
        conditions=("instructed",),
        judge=False,
        values={
            "ecliptica": (0.09, None),
            "truthfulqa": (0.50, None),
            "conditional_safety": (0.2, None),
            "length_control": (4.0, None),
            "litmus": (45.0, None),
        },
    )
    b_un = make_run_dir(
        tmp_path,
        "run-b-un",
        model="other-1b",
        fingerprint="fp-other",
        seed=3,
        conditions=("uninstructed",),
        judge=False,
        values={
            "ecliptica": (None, 0.05),
            "truthfulqa": (None, 0.05),
            "conditional_safety": (None, 0.15),
            "length_control": (None, 1.0),
            "litmus": (None, 41.0),
        },
    )
    c = make_run_dir(
        tmp_path,
        "run-c",
        fingerprint="fp-base",
        adapter="/ckpt/cita-lora",
        seed=4,
        values={
            "ecliptica": (0.065, 0.05),
            "truthfulqa": (0.20, 0.15),
            "conditional_safety": (0.3, 0.0),
            "length_control": (1.5, 1.2),
        },
    )
    # C's litmus: instructed only, from a second run of the same method.
    c2 = make_run_dir(
        tmp_path,
        "run-c-litmus",
        fingerprint="fp-base",
        adapter="/ckpt/cita-lora",
        seed=5,
        conditions=("instructed",),
        values={"litmus": (50.0, None)},
    )
    return [a, b_ins, b_un, c, c2]


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_schema_file_is_generated_from_code():
    from ecliptica_bench.report.leaderboard import columns, schema_markdown

    assert (REPO / "results" / "SCHEMA.md").read_text(encoding="utf-8") == schema_markdown()
    assert schema_columns() == columns()
    assert len(set(columns())) == len(columns())


def test_board_values_schema_and_iae(board_runs, tmp_path):
    from ecliptica_bench.metrics import iae
    from ecliptica_bench.report import build_leaderboard, write_leaderboard

    a, b_ins, b_un, c, c2 = board_runs
    df = build_leaderboard(board_runs)
    csv = tmp_path / "out" / "leaderboard.csv"
    write_leaderboard(df, csv=csv)
    back = pd.read_csv(csv)
    assert list(back.columns) == schema_columns()  # stable, documented, no index column
    assert len(back) == 3
    by = back.set_index("method")
    assert set(by.index) == {"smollm2-135m", "other-1b", "smollm2-135m+cita-lora"}

    # Values equal the runs' metrics.json values.
    ma, mbi, mbu, mc, mc2 = (_metrics(d) for d in board_runs)
    for suite in SUITES:
        ins = ma["suites"][suite]["conditions"]["instructed"]
        row = by.loc["smollm2-135m"]
        assert row[f"{suite}__paper"] == pytest.approx(ins["paper"]["value"])
        assert row[f"{suite}__paper_ci_half"] == pytest.approx((ins["paper"]["ci_high"] - ins["paper"]["ci_low"]) / 2)
        assert row[f"{suite}__paper_valid"] == pytest.approx(ins["paper_valid"]["value"])
        assert row[f"{suite}__paper_uninstructed"] == pytest.approx(
            ma["suites"][suite]["conditions"]["uninstructed"]["paper"]["value"]
        )
        d = ma["suites"][suite]["delta"]
        assert row[f"{suite}__delta"] == pytest.approx(d["value"])
        assert row[f"{suite}__delta_ci_half"] == pytest.approx((d["ci_high"] - d["ci_low"]) / 2)
        assert row[f"{suite}__delta_paper"] == pytest.approx(ma["suites"][suite]["delta_paper"]["value"])
        assert row[f"{suite}__headline"] == pytest.approx(ins["headline"]["value"])
        for sig in (
            "valid_rate",
            "echo_rate",
            "identifiability",
            "identifiability_valid",
            "judge_adherence",
            "judge_adherence_valid",
            "signed_switching",
            "truncation_rate",
            "judge_unscored_rate",
        ):
            assert row[f"{suite}__{sig}"] == pytest.approx(ins["signals"][sig]["value"]), (suite, sig)
        assert row[f"{suite}__n"] == ins["paper"]["n"]
        # The run pair: Delta is the difference of the two runs' values; no CI exists for it.
        rb = by.loc["other-1b"]
        vi = mbi["suites"][suite]["conditions"]["instructed"]["paper"]["value"]
        vu = mbu["suites"][suite]["conditions"]["uninstructed"]["paper"]["value"]
        hi = mbi["suites"][suite]["conditions"]["instructed"]["headline"]["value"]
        hu = mbu["suites"][suite]["conditions"]["uninstructed"]["headline"]["value"]
        assert rb[f"{suite}__delta"] == pytest.approx(hi - hu)
        assert rb[f"{suite}__delta_paper"] == pytest.approx(vi - vu)
        assert math.isnan(rb[f"{suite}__delta_ci_half"])
        assert math.isnan(rb[f"{suite}__judge_adherence"])  # no judge: empty, not zero
    assert by.loc["smollm2-135m", "judge"] == "judge-7b@v1"
    assert pd.isna(by.loc["other-1b", "judge"]) or by.loc["other-1b", "judge"] == ""
    assert by.loc["other-1b", "run_ids"] == "run-b-ins;run-b-un"
    assert by.loc["smollm2-135m+cita-lora", "run_ids"] == "run-c;run-c-litmus"
    assert by.loc["smollm2-135m", "dataset_sha"] == "d" * 64
    # C has no litmus Delta (instructed only): litmus leaves IAE for every method.
    assert math.isnan(by.loc["smollm2-135m+cita-lora", "litmus__delta"])
    assert by.loc["smollm2-135m+cita-lora", "litmus__paper"] == pytest.approx(50.0)
    used = [s for s in SUITES if s != "litmus"]
    assert set(back["iae_suites"]) == {";".join(used)}

    # IAE equals ecliptica_bench.metrics.iae on the Deltas (paper-compatible ones for the paper IAE, signed
    # ones for the absolute IAE), and the board is sorted by it.
    deltas = {m: {s: float(by.loc[m, f"{s}__delta"]) for s in used} for m in by.index}
    paper_deltas = {m: {s: float(by.loc[m, f"{s}__delta_paper"]) for s in used} for m in by.index}
    expected = iae(paper_deltas, absolute_gains=deltas)
    # C switches Conditional Safety the wrong way (0.3 -> signed -0.3): + on the paper Delta, - on the signed
    cita = by.loc["smollm2-135m+cita-lora"]
    assert cita["conditional_safety__delta_paper"] == pytest.approx(0.3)
    assert cita["conditional_safety__delta"] == pytest.approx(-0.3)
    assert expected["smollm2-135m+cita-lora"]["r_abs"]["conditional_safety"] == pytest.approx(-0.3)
    for m in by.index:
        assert by.loc[m, "iae_paper"] == pytest.approx(expected[m]["relative"], rel=1e-5)
        assert by.loc[m, "iae_abs"] == pytest.approx(expected[m]["absolute"], rel=1e-5)
    assert list(back["iae_paper"]) == sorted(back["iae_paper"], reverse=True)
    assert list(back["rank"]) == [1, 2, 3]
    assert back["iae_paper"].between(10, 100).all()


def test_markdown_and_plots(board_runs, tmp_path):
    from ecliptica_bench.report import leaderboard_frame, load_methods, write_leaderboard

    methods = load_methods(board_runs)
    df = leaderboard_frame(methods)
    md, plots = tmp_path / "lb.md", tmp_path / "plots"
    written = write_leaderboard(df, markdown=md, plots=plots, methods=methods)
    text = md.read_text()
    for m in df["method"]:
        assert m in text
    assert text.count("\n| ") >= 1 + len(df)
    assert "± " in text and "IAE over: ecliptica, truthfulqa" in text
    head = text.splitlines()[2]
    assert "IAE (paper-compatible)" in head and "IAE (abs, signed)" in head
    # the paper's Delta gets its own column only where it differs from the signed one
    assert "conditional_safety Δ paper" in head and "litmus Δ paper" in head and "truthfulqa Δ paper" not in head
    cita = next(line for line in text.splitlines() if line.startswith("| ") and "cita-lora" in line)
    cells = [c.strip() for c in cita.strip("|").split("|")]
    cs = head.strip("|").split("|")
    col = [c.strip() for c in cs].index("conditional_safety Δ")
    assert cells[col].startswith("-0.3") and cells[col + 1].startswith("0.3")
    pngs = {p.name for p in written if p.suffix == ".png"}
    assert pngs == {"radar.png", "heatmap.png", "ecliptica_per_type.png"}
    for name in pngs:
        assert_real_png(plots / name)


def test_markdown_shows_truncation_next_to_the_score(board_runs):
    """`<suite>__truncation_rate` is in the CSV columns, and the markdown score cell carries it as a
    compact suffix (✂N%) where any answer was cut, nothing where none was."""
    from ecliptica_bench.report import leaderboard_frame, load_methods
    from ecliptica_bench.report.leaderboard import to_markdown

    df = leaderboard_frame(load_methods(board_runs))
    assert all(f"{s}__truncation_rate" in df.columns for s in SUITES)
    df["truthfulqa__truncation_rate"] = [0.4] + [0.0] * (len(df) - 1)
    df["length_control__truncation_rate"] = [0.125] + [float("nan")] * (len(df) - 1)
    lines = to_markdown(df).splitlines()
    head = [c.strip() for c in lines[2].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4 : 4 + len(df)]]
    tq, lc = head.index("truthfulqa score"), head.index("length_control score")
    assert rows[0][tq].endswith(" ✂40%") and rows[0][lc].endswith(" ✂12%")
    assert all("✂" not in r[tq] and "✂" not in r[lc] for r in rows[1:])
    assert "✂N% = share of instructed answers cut at the token budget" in "\n".join(lines)


def assert_real_png(path: Path, min_bytes: int = 5000):
    """A PNG that exists, is not tiny and is not one flat colour."""
    import matplotlib.image as mpimg

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > min_bytes, (path, len(data))
    img = mpimg.imread(path)
    flat = img.reshape(-1, img.shape[-1])[:, :3] if img.ndim == 3 else img.reshape(-1, 1)
    assert len(np.unique((flat * 255).round().astype(np.uint8), axis=0)) > 20, f"{path}: near-uniform image"
    assert flat.std() > 0.02, f"{path}: blank image"


def test_names_group_and_split(board_runs):
    from ecliptica_bench.report import build_leaderboard

    a, b_ins, b_un, c, c2 = board_runs
    df = build_leaderboard([a, b_ins, b_un], names={str(a): "baseline", b_ins: "paired", b_un: "paired"})
    assert set(df["method"]) == {"baseline", "paired"}
    assert df.set_index("method").loc["paired", "run_ids"] == "run-b-ins;run-b-un"
    # Two runs of one method holding the same suite+condition clash unless named apart.
    with pytest.raises(EclipticaError, match="is in both"):
        build_leaderboard([a, c, c2, b_ins], names={a: "x", c: "x"})
    df = build_leaderboard([a, c], names={a: "x", c: "y"})
    assert list(df["method"]) != [] and set(df["method"]) == {"x", "y"}


def test_single_method_board_and_no_common_suite(tmp_path):
    from ecliptica_bench.report import build_leaderboard

    one = make_run_dir(tmp_path, "solo", seed=9)
    df = build_leaderboard([one])
    assert len(df) == 1 and df["iae_suites"].iloc[0] == ";".join(SUITES)
    ins_only = make_run_dir(
        tmp_path, "ins-only", model="m2", fingerprint="fp2", conditions=("instructed",), values={"ecliptica": (0.1, None)}
    )
    df = build_leaderboard([one, ins_only])
    assert df["iae_suites"].iloc[0] == ""
    assert df["iae_paper"].isna().all() and df["iae_abs"].isna().all()


def test_bad_inputs(tmp_path, board_runs):
    from ecliptica_bench.report import build_leaderboard

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EclipticaError, match="no metrics.json"):
        build_leaderboard([empty])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text('{"run_id": "x", "suites": {"ecliptica": {"conditions": {"weird": {}}}}}')
    with pytest.raises(ValidationError, match=r"bad/metrics.json: suites.ecliptica.conditions.weird"):
        build_leaderboard([bad])
    # metrics.json from before signed Deltas: a clear request to re-score, not a silent mix of meanings
    old = _metrics(board_runs[0])
    for sd in old["suites"].values():
        del sd["delta_paper"]
    (bad / "metrics.json").write_text(json.dumps(old))
    with pytest.raises(ValidationError, match=r"suites.ecliptica: no `delta_paper`.*re-score with `ecliptica score"):
        build_leaderboard([bad])
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        build_leaderboard([bad])
    with pytest.raises(EclipticaError, match="not one of the run directories"):
        build_leaderboard([board_runs[0]], names={tmp_path / "elsewhere": "x"})
    # A run pair from different datasets cannot make a Delta.
    x = make_run_dir(
        tmp_path,
        "x-ins",
        model="q",
        fingerprint="fq",
        conditions=("instructed",),
        values={"ecliptica": (0.1, None)},
        dataset_sha="a" * 64,
    )
    y = make_run_dir(
        tmp_path,
        "x-un",
        model="q",
        fingerprint="fq",
        conditions=("uninstructed",),
        values={"ecliptica": (None, 0.1)},
        dataset_sha="b" * 64,
    )
    with pytest.raises(EclipticaError, match="same dataset"):
        build_leaderboard([x, y])


def test_cli_leaderboard(board_runs, tmp_path):
    from click.testing import CliRunner

    from ecliptica_bench.cli import cli

    a, b_ins, b_un, c, c2 = board_runs
    out = tmp_path / "res"
    # (--plots is covered by test_markdown_and_plots; plots take seconds on 2 cores)
    args = [
        "leaderboard",
        *map(str, board_runs),
        "-o",
        str(out / "leaderboard.csv"),
        "--markdown",
        str(out / "leaderboard.md"),
        "--name",
        f"{c}=CITA",
        "--name",
        f"{c2}=CITA",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "leaderboard.csv")
    assert "CITA" in set(df["method"]) and len(df) == 3
    assert (out / "leaderboard.md").is_file() and not (out / "radar.png").exists()
    assert "CITA" in res.output
    res = CliRunner().invoke(cli, ["leaderboard", str(tmp_path / "nope")])
    assert res.exit_code == 2
    res = CliRunner().invoke(cli, ["leaderboard", str(a), "--name", "no-equals-sign"])
    assert res.exit_code == 2 and "RUN_DIR=NAME" in res.output
