"""The main job on the embedded defaults, offline: the paper in miniature.

    build -> build-prefs -> train DPO and CITA LoRA adapters -> run base, DPO and CITA on the five suites
    -> score -> leaderboard (three rows) -> paired comparisons -> one report with the three side by side

Each stage is the same function its CLI command calls and reads the previous stage's files, so any stage
can be rerun alone. A second demo reuses everything: adapters whose config, data and base model are
unchanged are not retrained (a stamp beside each), and generations come from each run's SQLite cache.
`--quick` keeps the base-model-only path (build -> run -> score -> leaderboard + report).

Evaluation is on held-out prompts by construction: the switch pairs are written over their own prompt
bank (prompts/preferences/), which tests/test_prefs_leakage.py keeps disjoint from every eval suite.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from .data.io import dumps, read_json, sha256_file, sha256_text, write_json
from .suites import SUITES

# Greedy decoding keeps the demo reproducible (and lets the uninstructed control share one generation per
# prompt); the paper's sampling (0.7 / 0.9) is `ecliptica run`'s default.
DEMO_TEMPERATURE = 0.0
DEMO_BOOTSTRAP = 1000
METHODS = ("base", "dpo", "cita")
COMPARISONS = (("cita", "base"), ("cita", "dpo"), ("dpo", "base"))

# Cases per suite (whole prompts first) and new-token budgets, the same for every method. Chosen from
# measured lengths of the embedded model's answers (docs/measured.md, token budgets): the base model rambles,
# so any budget cuts some answers; these keep the run inside the demo's time while the length suite's
# detailed condition has room to be several times longer than a 50-word concise answer.


def demo_limits() -> dict[str, int]:
    """Cases per suite in the CPU demo (Suite.demo_limit)."""
    return {s.name: s.demo_limit for s in SUITES.values()}


def demo_budgets() -> dict[str, int]:
    """max_new_tokens per suite in the CPU demo (Suite.demo_tokens)."""
    return {s.name: s.demo_tokens for s in SUITES.values()}


@dataclass(frozen=True)
class DemoTraining:
    """The demo's training settings, shared by DPO and CITA except the KL anchor. Measured trade-off (docs/measured.md):
    at these settings the anchor cuts the mean token KL to the base model 1.8x (0.078 vs 0.138) at a lower
    held-out preference accuracy (0.55 vs 0.61); without the SFT term 2.4x (0.058 vs 0.141) at a higher one
    (0.61 vs 0.58)."""

    lr: float = 2e-3
    max_steps: int = 24
    batch_size: int = 4
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_length: int = 256
    beta: float = 0.1
    cita_kl_weight: float = 0.5
    # an NLL term on the chosen response, the same for both methods: at 24 steps the preference term alone
    # barely moves the refusal axis of this 135M model (measured: 0 refusals under STRICT either way)
    sft_weight: float = 1.0
    seed: int = 3407


def _stage(name: str, t0: float) -> None:
    click.echo(f"[{name}] done in {time.time() - t0:.1f}s")


# ------------------------------------------------------------------------------------------- training
def _train_config(method: str, prefs_dir: Path, out: Path, t: DemoTraining):
    from .train.trainer import TrainConfig

    return TrainConfig(
        method=method,
        model="smollm2-135m",
        data=str(prefs_dir),
        out=str(out),
        lora_r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_targets=t.lora_targets,
        beta=t.beta,
        lr=t.lr,
        max_steps=t.max_steps,
        batch_size=t.batch_size,
        max_length=t.max_length,
        seed=t.seed,
        kl_weight=t.cita_kl_weight if method == "cita" else None,
        sft_weight=t.sft_weight,
        eval_heldout=True,
    )


def train_or_reuse(method: str, prefs_dir: Path, out: Path, t: DemoTraining) -> dict:
    """Train one adapter, or reuse OUT when it was trained with the same config, data and base model."""
    from .models import resolve_model
    from .train.prefs import MANIFEST as PREFS_MANIFEST
    from .train.trainer import train

    cfg = _train_config(method, prefs_dir, out, t)
    stamp = sha256_text(
        dumps(
            {
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "data")},
                "data": sha256_file(prefs_dir / PREFS_MANIFEST),
                "model": resolve_model(cfg.model),
            }
        )
    )
    stamp_file = out / "demo_stamp.json"
    summary_file = out / "summary.json"
    if stamp_file.exists() and summary_file.exists() and (out / "adapter" / "adapter_config.json").exists():
        if read_json(stamp_file).get("stamp") == stamp:
            summary = read_json(summary_file)
            click.echo(f"[train {method}] reusing {out} (same config, data and base model)")
            return {**summary, "reused": True}
    if out.exists():
        shutil.rmtree(out)  # a different config or an unfinished run: start clean
    summary = train(cfg)
    write_json(stamp_file, {"stamp": stamp})
    return {**summary, "reused": False}


# ------------------------------------------------------------------------------------------------ demo
def demo(
    out: Path,
    quick: bool = False,
    limits: dict | None = None,
    budgets: dict | None = None,
    training: DemoTraining | None = None,
    bootstrap: int = DEMO_BOOTSTRAP,
) -> dict:
    from .data.build import build_dataset
    from .run import RunOptions, format_summary, run
    from .scoring.score import score_run, summary_table

    out = Path(out)
    t_all = time.time()
    limits = limits or demo_limits()
    budgets = budgets or demo_budgets()
    training = training or DemoTraining()

    t0 = time.time()
    data_dir = out / "data"
    manifest = build_dataset(data_dir)
    click.echo(f"[build] {data_dir}: " + ", ".join(f"{n} {s['rows']}" for n, s in manifest["suites"].items()) + " rows")
    _stage("build", t0)

    adapters: dict[str, Path | None] = {"base": None}
    train_summaries: dict[str, dict] = {}
    if not quick:
        from .train.prefs import build_prefs

        t0 = time.time()
        prefs_dir = out / "prefs"
        pm = build_prefs(prefs_dir)
        click.echo(
            f"[prefs] {prefs_dir}: "
            + "; ".join(
                f"{name} {sp['rows']} rows / {sp['pairs']} pairs ({', '.join(f'{k} {n}' for k, n in sp['per_kind'].items())})"
                for name, sp in pm["splits"].items()
            )
        )
        _stage("prefs", t0)
        for method in ("dpo", "cita"):
            t0 = time.time()
            s = train_or_reuse(method, prefs_dir, out / "adapters" / method, training)
            train_summaries[method] = s
            adapters[method] = out / "adapters" / method
            click.echo(train_line(method, s))
            _stage(f"train {method}", t0)

    run_dirs: dict[str, Path] = {}
    for method, adapter in adapters.items():
        t0 = time.time()
        click.echo(f"[run {method}]")
        summary = run(
            RunOptions(
                out=out / "runs",
                data=data_dir,
                limit=limits,
                condition="both",
                temperature=DEMO_TEMPERATURE,
                max_new_tokens=budgets,
                backend="hf",
                adapter=str(adapter) if adapter else None,
            )
        )
        click.echo(format_summary(summary))
        run_dirs[method] = Path(summary["run_dir"])
        _stage(f"run {method}", t0)

    for method, run_dir in run_dirs.items():
        t0 = time.time()
        metrics = score_run(run_dir, n_boot=bootstrap)
        click.echo(f"[score {method}]\n" + summary_table(metrics))
        _stage(f"score {method}", t0)

    return _board(out, run_dirs, train_summaries, bootstrap, t_all)


def train_line(method: str, s: dict) -> str:
    """One line per adapter: steps, time, drift from the base model and held-out preference accuracy (the
    same figures as the report's training table)."""
    from .report.board import training_rows

    r = training_rows({method: s})[0]
    parts = [f"[train {method}] {r['steps']} steps, {r['s_per_step']} s/step"]
    if r["kl_final"]:
        parts.append(f"KL to base: final {r['kl_final']}, mean {r['kl_mean']}")
    if r["acc_after"]:
        parts.append(f"held-out preference accuracy {r['acc_before']} -> {r['acc_after']} ({r['per_kind']})")
    return "; ".join(parts)


def _board(out: Path, run_dirs: dict[str, Path], train_summaries: dict, bootstrap: int, t_all: float) -> dict:
    from .report import build_leaderboard, write_leaderboard, write_report
    from .scoring.compare import compare_runs, format_compare, write_compare

    t0 = time.time()
    results = out / "results"
    names = {str(d): m for m, d in run_dirs.items()}
    df = build_leaderboard(list(run_dirs.values()), names=names)
    written = write_leaderboard(df, csv=results / "leaderboard.csv", markdown=results / "leaderboard.md", plots=results)
    click.echo("\n" + (results / "leaderboard.md").read_text(encoding="utf-8"))
    compares = {}
    for a, b in COMPARISONS:
        if a in run_dirs and b in run_dirs:
            res = compare_runs(run_dirs[a], run_dirs[b], n_boot=bootstrap)
            write_compare(res, results / f"compare_{a}_vs_{b}.json")
            compares[f"{a} vs {b}"] = res
            click.echo(f"\n[compare] {a} vs {b}\n" + format_compare(res))
    if train_summaries:
        write_json(results / "training.json", train_summaries)
    reports = [write_report(d) for d in run_dirs.values()]
    board_report = None
    if len(run_dirs) > 1:
        from .report.board import write_board_report

        board_report = write_board_report(results / "report.html", run_dirs, df, compares, train_summaries)
    _stage("report", t0)

    click.echo(f"\noutputs (total {time.time() - t_all:.0f}s):")
    click.echo(f"  dataset      {out / 'data'}")
    for m, d in run_dirs.items():
        click.echo(f"  run {m:<8} {d}  (generations.parquet, scores.parquet, metrics.json, report.html)")
    for p in written:
        click.echo(f"  leaderboard  {p}")
    if board_report:
        click.echo(f"  report       {board_report}")
    return {
        "run_dirs": run_dirs,
        "reports": reports,
        "board_report": board_report,
        "leaderboard": results / "leaderboard.csv",
        "compares": compares,
        "training": train_summaries,
    }
