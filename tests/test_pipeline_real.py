"""The whole chain on real runs of the embedded model: run (two seeds, sampled) -> score -> leaderboard,
with the CSV checked against each run's metrics.json; and the demo command end to end."""

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ecliptica_bench.cli import cli

pytestmark = pytest.mark.slow


def _run_and_score(out: Path, seed: int) -> Path:
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--suites",
            "ecliptica,truthfulqa",
            "--limit",
            "20",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0.7",
            "--seed",
            str(seed),
            "--condition",
            "both",
            "--backend",
            "hf",
            "--out",
            str(out),
            "--run-id",
            f"seed{seed}",
        ],
    )
    assert res.exit_code == 0, res.output
    run_dir = out / f"seed{seed}"
    res = CliRunner().invoke(cli, ["score", str(run_dir), "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    return run_dir


def test_leaderboard_over_two_real_runs(tmp_path):
    runs = tmp_path / "runs"
    a = _run_and_score(runs, 1)
    b = _run_and_score(runs, 2)
    assert a != b
    csv = tmp_path / "board.csv"
    res = CliRunner().invoke(
        cli,
        [
            "leaderboard",
            str(a),
            str(b),
            "--name",
            f"{a}=seed1",
            "--name",
            f"{b}=seed2",
            "-o",
            str(csv),
            "--markdown",
            str(tmp_path / "board.md"),
            "--plots",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    board = pd.read_csv(csv)
    assert sorted(board["method"]) == ["seed1", "seed2"]
    assert "Unnamed: 0" not in board.columns
    for name, run_dir in (("seed1", a), ("seed2", b)):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        row = board[board["method"] == name].iloc[0]
        for suite in ("ecliptica", "truthfulqa"):
            m = metrics["suites"][suite]
            assert row[f"{suite}__paper"] == pytest.approx(m["conditions"]["instructed"]["paper"]["value"])
            # the board's Delta: corrected for detector error where a detector with figures built it (issue 23)
            fixed = (m.get("delta_corrected") or {}).get("value")
            assert row[f"{suite}__delta"] == pytest.approx(m["delta"]["value"] if fixed is None else fixed)
            assert row[f"{suite}__delta_raw"] == pytest.approx(m["delta"]["value"])
            assert row[f"{suite}__n"] == m["conditions"]["instructed"]["paper"]["n"]
    assert list(board["iae_paper"]) == sorted(board["iae_paper"], reverse=True)
    for png in ("radar.png", "heatmap.png"):
        assert (tmp_path / png).stat().st_size > 5000


def test_quick_demo_command(tmp_path):
    res = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(tmp_path / "demo"), "--limit", "20", "--max-new-tokens", "8"])
    assert res.exit_code == 0, res.output
    assert "report" in res.output
    board = pd.read_csv(tmp_path / "demo" / "results" / "leaderboard.csv")
    assert len(board) == 1
    run_dir = next((tmp_path / "demo" / "runs").iterdir())
    assert (run_dir / "report.html").stat().st_size > 10000
    # a second demo reuses the cache: nothing is generated again
    res = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(tmp_path / "demo"), "--limit", "20", "--max-new-tokens", "8"])
    assert res.exit_code == 0, res.output
    assert "0 generated now" in res.output


@pytest.mark.slow
def test_demo_trains_dpo_and_cita_and_ranks_three_methods(tmp_path):
    """The demo's whole chain with a short training: three rows, adapters that really changed the model,
    paired comparisons written, the side-by-side report; a second demo retrains and regenerates nothing."""
    args = [
        "demo",
        "--out",
        str(tmp_path / "demo"),
        "--train-steps",
        "2",
        "--limit",
        "10",
        "--max-new-tokens",
        "8",
        "--bootstrap",
        "200",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = tmp_path / "demo"
    board = pd.read_csv(out / "results" / "leaderboard.csv")
    assert sorted(board["method"]) == ["base", "cita", "dpo"]
    # the likelihood stage filled every switching axis for every row
    from ecliptica_bench.report.leaderboard import switching_axes

    for axis in switching_axes():
        assert board[f"likelihood__{axis}__margin"].notna().all() and board[f"likelihood__{axis}__margin_ci_half"].notna().all()
    # a console that reads like a tool: stage lines, no trainer dictionaries (they are in the log it names)
    log = (out / "demo.log").read_text(encoding="utf-8")
    assert str(out / "demo.log") in res.output.splitlines()[0]
    assert "{'loss'" not in res.output and "'loss'" in log and "FutureWarning" not in res.output
    for stage in (
        "[build]",
        "[prefs]",
        "[train dpo]",
        "[train cita]",
        "[run base]",
        "[score cita]",
        "[likelihood dpo]",
        "[report]",
    ):
        assert stage in res.output, stage
    assert "2 steps x 4 rows = 0.03 epochs of 252 rows" in res.output
    assert len(res.output.splitlines()) <= 80
    assert board["model_fingerprint"].nunique() == 3  # base, base+dpo adapter, base+cita adapter
    for a, b in (("cita", "base"), ("cita", "dpo"), ("dpo", "base")):
        assert (out / "results" / f"compare_{a}_vs_{b}.json").exists()
    # the adapters moved away from the base model: LoRA B starts at zero, training made it non-zero
    from safetensors.torch import load_file

    for method in ("dpo", "cita"):
        weights = load_file(str(out / "adapters" / method / "adapter" / "adapter_model.safetensors"))
        assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)
    training = json.loads((out / "results" / "training.json").read_text())
    assert training["cita"]["global_step"] == training["dpo"]["global_step"] == 2
    html = (out / "results" / "report.html").read_text()
    for needle in ("Paired comparisons", "Same prompt, opposite instructions", "strict", "permissive", "cita", "dpo"):
        assert needle in html
    # a second demo: adapters reused, nothing generated
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert res.output.count("reused: ") == 2 and res.output.count("0 generated now") == 3
    assert res.output.count("(reused)") == 3  # the likelihoods too


def test_console_sends_library_output_to_the_log(tmp_path, capsys):
    """Stage lines reach the console and the log; inside a stage, what libraries print (the HF trainer's
    per-step dicts), warnings and library log records reach the log only; with verbose, the console too."""
    import logging
    import warnings

    from ecliptica_bench.pipeline import Console

    def noisy():
        print({"loss": 4.423, "grad_norm": 1.0})
        warnings.warn("a library FutureWarning", FutureWarning, stacklevel=1)
        logging.getLogger("transformers.modeling_utils").warning("Loading weights: a library warning")

    for verbose in (False, True):
        log = tmp_path / f"v{verbose}" / "demo.log"
        with Console(log, verbose=verbose) as con:
            con.line("[build] done")
            with con.stage():
                noisy()
            con.detail("a full table")
        console = capsys.readouterr().out
        text = log.read_text(encoding="utf-8")
        assert "[build] done" in console and "[build] done" in text and "a full table" in text
        if verbose:  # everything on the console as well
            assert "'loss': 4.423" in console and "a full table" in console
        else:
            for needle in ("'loss': 4.423", "a library FutureWarning", "Loading weights: a library warning"):
                assert needle in text and needle not in console, needle
            assert "a full table" not in console
