"""The `ecliptica` command. Each command parses its flags and calls one stage function; stage modules
are imported lazily so `ecliptica --help` stays fast."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import click

from .errors import EclipticaError


class EclipticaGroup(click.Group):
    """Turns an EclipticaError from any command into clean one-line errors and exit code 2 (with -v, the
    traceback first, including the library exception it wraps)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EclipticaError as exc:
            if ctx.params.get("verbose"):
                traceback.print_exc()
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(2)


@click.group(cls=EclipticaGroup)
@click.version_option(package_name="ecliptica-bench")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """ECLIPTICA: does a model switch behaviour when only the alignment instruction changes?"""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------------------------------------- build
@cli.command("build-dataset")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--format", "formats", default="parquet,jsonl", show_default=True, help="Comma list: parquet, jsonl.")
@click.option("--suites", default="all", show_default=True, help="Comma list of suites, or 'all'.")
@click.option(
    "--source",
    type=click.Choice(["bundled", "hub"]),
    default="bundled",
    show_default=True,
    help="bundled: our offline banks; hub: the paper's hub datasets (pinned in prompts/hub_sources.yaml).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Local copies of the hub files (with --source hub).",
)
@click.option("--from-hub", "from_hub", default=None, help="Load a published ECLIPTICA set by repo id instead.")
def build_dataset_cmd(out, seed, formats, suites, source, data_dir, from_hub):
    """Build the benchmark suites into OUT (parquet + jsonl, card, manifest)."""
    if data_dir is not None and source != "hub":
        raise EclipticaError("--data-dir holds local copies of the hub files: use it with --source hub")
    if from_hub:
        from .hub_publish import build_from_hub

        manifest = build_from_hub(from_hub, out, formats=formats)
    else:
        from .data.build import build_dataset

        manifest = build_dataset(out, suites=suites, seed=seed, formats=formats, source=source, data_dir=data_dir)
    click.echo(f"wrote {out}")
    for name, info in manifest["suites"].items():
        click.echo(
            f"  {name:<20} {info['rows']:>6} rows  {info['prompts']:>5} prompts  "
            f"{len(info['per_instruction_type'])} instruction types"
        )


@cli.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path, exists=True))
def validate_cmd(path):
    """Check the bundled prompt and instruction files, or a built dataset / run directory at PATH."""
    from .data.validate import validate_path

    click.echo(validate_path(path))


@cli.command("push")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--repo-id", required=True)
@click.option("--private", is_flag=True)
@click.option("--revision", default=None)
@click.option(
    "--dry-run",
    "dry_run",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the exact repo layout to this folder instead of uploading.",
)
def push_cmd(directory, repo_id, private, revision, dry_run):
    """Publish a built dataset to the HF Hub (one config per suite)."""
    from .hub_publish import push_dataset

    click.echo(push_dataset(directory, repo_id, private=private, revision=revision, dry_run=dry_run))


@cli.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo"), show_default=True)
@click.option("--quick", is_flag=True, help="The base model only (no training): build, run, score, leaderboard, report.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Cases per suite, whole prompts first (default: the demo's per-suite sizes; --quick: 40).",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="One budget for every suite (default: the demo's per-suite budgets; --quick: 48).",
)
@click.option(
    "--train-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Optimizer steps per adapter (default: the demo's; fewer is faster and moves the models less).",
)
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=1000, show_default=True)
def demo_cmd(out, quick, limit, max_new_tokens, train_steps, n_boot):
    """The main job on the embedded model: train DPO and CITA adapters on the bundled switch pairs, run base,
    DPO and CITA on the five suites (held-out prompts), score, and rank them side by side."""
    from dataclasses import replace

    from .pipeline import DemoTraining, demo
    from .suites import SUITES

    if quick:
        limit, max_new_tokens = limit or 40, max_new_tokens or 48
    limits = {s: limit for s in SUITES} if limit else None
    budgets = {s: max_new_tokens for s in SUITES} if max_new_tokens else None
    training = replace(DemoTraining(), max_steps=train_steps) if train_steps else None
    demo(out, quick=quick, limits=limits, budgets=budgets, training=training, bootstrap=n_boot)


# ------------------------------------------------------------------------------------------------ run
@cli.command("run")
@click.option(
    "--model",
    default="smollm2-135m",
    show_default=True,
    help="Model folder, hub id or alias (smollm2-135m = the embedded model); the served name for openai.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "vllm", "hf", "openai"]),
    default="auto",
    show_default=True,
    help="auto = vllm if installed, else hf.",
)
@click.option("--suites", default="all", show_default=True, help="Comma list of suites, or 'all'.")
@click.option("--limit", type=int, default=None, help="At most N cases per suite, in dataset order (whole prompts first).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Runs go to OUT/<run_id>/.")
@click.option(
    "--condition",
    type=click.Choice(["instructed", "uninstructed", "both"]),
    default="both",
    show_default=True,
    help="uninstructed = the same user prompt with no alignment instruction.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Sampling seed.")
@click.option("--temperature", type=float, default=0.7, show_default=True, help="0 = greedy.")
@click.option("--top-p", "top_p", type=float, default=0.9, show_default=True)
@click.option("--max-new-tokens", type=int, default=None, help="Default: each suite's paper budget (150-512).")
@click.option("--batch-size", type=int, default=None, help="Requests per batch (default: the backend's).")
@click.option("--adapter", default=None, help="LoRA adapter folder (hf, vllm).")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="Weights precision (hf, vllm); part of the cache key. auto: hf = the "
    "config's dtype (fp32 for the embedded model), vllm = bfloat16 on CPU, vLLM's choice on a GPU.",
)
@click.option(
    "--base-url",
    multiple=True,
    help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (openai). "
    "Give it several times for replicas of one model: requests are spread over them, and a server "
    "that goes down hands its requests to the others.",
)
@click.option(
    "--api-key-env",
    default=None,
    help="Name of the environment variable holding the API key (openai; e.g. OPENAI_API_KEY; default: no key, "
    "for local servers); it must be set; the key is never stored.",
)
@click.option("--concurrency", type=int, default=8, show_default=True, help="Requests in flight per server (openai).")
@click.option("--tensor-parallel-size", type=int, default=1, show_default=True, help="vllm.")
@click.option("--data-parallel-size", type=int, default=1, show_default=True, help="vllm.")
@click.option(
    "--distributed-executor-backend",
    type=click.Choice(["mp", "ray"]),
    default=None,
    help="vllm: how its workers run. mp = processes on this node (one node, several GPUs); ray = a Ray "
    "cluster (several nodes). Default: vLLM's choice (one GPU needs none).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="A built dataset (build-dataset); default: the bundled banks built in memory, seed 42.",
)
@click.option("--run-id", default=None, help="Run directory name (default: a hash of the resolved config).")
@click.option("--wait", is_flag=True, help="If another command is writing the run directory, wait for it (default: exit 2).")
def run_cmd(**kw):
    """Generate responses for every case (and condition) into OUT/<run_id>/; reruns fill in only what is missing."""
    from .run import RunOptions, format_summary, run

    summary = run(RunOptions(**kw, cli_args=sys.argv[1:]))
    click.echo(format_summary(summary))
    if summary["unresolved"]:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- train
@cli.command("build-prefs")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option(
    "--source",
    default="bundled",
    show_default=True,
    help="bundled: prompts/preferences/{safety,length,epistemic}.yaml; hub: PKU-SafeRLHF (pinned); or a .jsonl/.parquet PATH.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--heldout", type=float, default=0.2, show_default=True, help="Share of pairs held out (split by pair).")
@click.option(
    "--hub-file",
    type=click.Path(path_type=Path),
    default=None,
    help="With --source hub: a local copy of the PKU-SafeRLHF train file (jsonl/parquet, the hub's columns).",
)
@click.option("--max-pairs", type=int, default=None, help="Keep at most N pairs (seeded sample).")
@click.option(
    "--drop-eval-overlap", is_flag=True, help="With --source hub: drop prompts found in the conditional-safety eval set."
)
def build_prefs_cmd(out, source, seed, heldout, hub_file, max_pairs, drop_eval_overlap):
    """Instruction-conditioned preference data for `ecliptica train` (train/heldout parquet + manifest)."""
    from .train.prefs import build_prefs

    m = build_prefs(
        out,
        source=source,
        seed=seed,
        heldout=heldout,
        hub_file=hub_file,
        max_pairs=max_pairs,
        drop_eval_overlap=drop_eval_overlap,
    )
    click.echo(f"wrote {out}")
    for name, info in m["splits"].items():
        types = ", ".join(f"{k} {v}" for k, v in info["per_instruction_type"].items())
        click.echo(f"  {name:<8} {info['rows']:>6} rows  {info['pairs']:>5} pairs  ({types})")
    for name, o in ((m.get("eval_overlap") or {}).get("eval_sets") or {}).items():
        click.echo(f"  overlap with the {name} conditional-safety eval set: {o['overlap']} prompts ({100 * o['rate']:.1f}%)")


@cli.command("train")
@click.option("--method", type=click.Choice(["cita", "dpo", "sft"]), default="cita", show_default=True)
@click.option("--model", default="smollm2-135m", show_default=True, help="HF model folder, hub id or alias.")
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="A preference set from `ecliptica build-prefs`.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output directory (required unless --eval-only).")
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=16, show_default=True)
@click.option(
    "--lora-targets",
    default=",".join(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")),
    show_default=True,
    help="Comma list of module names that get LoRA.",
)
@click.option("--beta", type=float, default=0.1, show_default=True)
@click.option("--kl-weight", type=float, default=None, help="lambda_KL for cita [default: 2e-4]; 0 is refused.")
@click.option("--kl-anneal", default=None, help="START:END: lambda_KL linear over the steps (replaces --kl-weight).")
@click.option("--sft-weight", type=float, default=0.0, show_default=True, help="Weight of an NLL term on chosen (cita/dpo).")
@click.option("--lr", type=float, default=5e-6, show_default=True)
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Stop after N optimizer steps (overrides --epochs).")
@click.option(
    "--batch-size",
    type=int,
    default=4,
    show_default=True,
    help="Preference pairs per forward pass on each process (per-device batch).",
)
@click.option(
    "--grad-accum",
    type=int,
    default=1,
    show_default=True,
    help="Micro-batches per optimizer step (gradient accumulation): a step sees batch-size x processes x grad-accum pairs.",
)
@click.option("--max-length", type=int, default=256, show_default=True, help="Tokens per prompt+completion.")
@click.option("--seed", type=int, default=3407, show_default=True)
@click.option(
    "--prompt-format",
    type=click.Choice(["chat", "block"]),
    default="chat",
    show_default=True,
    help="chat: system=instruction, user=prompt (as evaluated); block: the paper's ### Alignment Instruction block.",
)
@click.option("--merge", is_flag=True, help="Also save the adapter merged into a full model (OUT/merged).")
@click.option("--save-steps", type=int, default=0, show_default=True, help="Checkpoint every N steps (0 = none).")
@click.option("--resume", is_flag=True, help="Continue the run in OUT from its last checkpoint.")
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for memory.")
@click.option(
    "--dtype",
    "dtype",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="bfloat16: bf16 autocast; auto: bf16 where the GPU/CPU has native bf16 (AVX512-BF16/AMX), else "
    "float32. The choice is recorded in OUT/train_config.json and summary.json.",
)
@click.option(
    "--pack/--no-pack",
    default=True,
    show_default=True,
    help="Run each batch padding-free, the chosen and rejected rows of a pair sharing their prompt (same "
    "results, fewer tokens through the model).",
)
@click.option(
    "--ref-cache-mb",
    type=int,
    default=512,
    show_default=True,
    help="Keep the reference model's completion hidden states (up to this many MB) so later epochs skip the "
    "reference forward (same results); 0 turns it off.",
)
@click.option("--eval-heldout", is_flag=True, help="Held-out preference accuracy before and after training (OUT/pref_eval.json).")
@click.option("--eval-only", is_flag=True, help="Only measure preference accuracy of --model (+ --adapter) on --split.")
@click.option(
    "--adapter",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="With --eval-only: a LoRA adapter to evaluate.",
)
@click.option("--split", type=click.Choice(["train", "heldout"]), default="heldout", show_default=True, help="With --eval-only.")
def train_cmd(**kw):
    """Train CITA / DPO / SFT with LoRA on a preference set; or (--eval-only) measure preference accuracy."""
    import json as _json

    from .train.trainer import TrainConfig, evaluate_preferences, train

    if kw.pop("eval_only"):
        rep = evaluate_preferences(
            kw["model"],
            kw["adapter"],
            kw["data"],
            split=kw["split"],
            beta=kw["beta"],
            max_length=kw["max_length"],
            prompt_format=kw["prompt_format"],
        )
        text = _json.dumps(rep, indent=2)
        if kw["out"]:
            from .data.io import atomic_write_text

            atomic_write_text(Path(kw["out"]), text + "\n")
        click.echo(text)
        return
    if kw["out"] is None:
        raise click.UsageError("--out is required for training")
    if kw["adapter"] is not None:
        raise click.UsageError("--adapter is for --eval-only (training always starts a new adapter)")
    for k in ("adapter", "split"):
        kw.pop(k)
    kw["lora_targets"] = tuple(t.strip() for t in kw["lora_targets"].split(",") if t.strip())
    summary = train(TrainConfig(**{k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()}))
    if summary is None:  # not the main process of a multi-process launch: the main one reports
        return
    click.echo(
        f"trained {summary['method']}: {summary['global_step']} steps, {summary['seconds_per_step']} s/step, "
        f"{summary['dtype']}, peak RSS {summary['peak_rss_mb']:.0f} MB"
    )
    if summary.get("kl_to_reference"):
        k = summary["kl_to_reference"]
        click.echo(
            f"  KL to the reference: final {k['final']:.4g}, mean {k['mean']:.4g}"
            + ("" if k["optimised"] else " (measured, not optimised)")
        )
    click.echo(f"  last step: {_json.dumps(summary['last'])}")
    click.echo(f"  adapter: {summary['adapter']}" + (f"  merged: {summary['merged']}" if summary["merged"] else ""))
    if summary.get("pref_eval"):
        for when, rep in summary["pref_eval"].items():
            o = rep["overall"]
            click.echo(
                f"  held-out {when}: accuracy_logp_per_token {o['accuracy_logp_per_token']:.3f}  "
                f"pair_accuracy_logp_per_token {o['pair_accuracy_logp_per_token']}"
                + (f"  accuracy_reward {o['accuracy_reward']:.3f}" if "accuracy_reward" in o else "")
            )


@cli.command("likelihood")
@click.option("--model", default="smollm2-135m", show_default=True, help="HF model folder, hub id or alias.")
@click.option("--adapter", default=None, help="LoRA adapter folder (or an `ecliptica train --out` folder).")
@click.option(
    "--prefs",
    default="bundled",
    show_default=True,
    help="A preference set from `ecliptica build-prefs` (its heldout split), or bundled: the bundled "
    "switch pairs split as build-prefs does by default.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run directory for likelihood.json: an `ecliptica run` directory of the same model, or a new one "
    "(default: runs/<model>-<hash>).",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="Weights precision, as `ecliptica run --backend hf` (auto: the config's).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Rows per forward pass.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=10000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
def likelihood_cmd(model, adapter, prefs, out, dtype, batch_size, n_boot, seed):
    """Sampling-free switching: does each instruction of a held-out switch pair make its own response more
    likely than the other one (teacher-forced log-likelihoods, no generation)? Writes RUN_DIR/likelihood.json."""
    from .likelihood import evaluate_likelihood, format_likelihood, write_likelihood

    if prefs != "bundled" and not Path(prefs).is_dir():
        raise EclipticaError(f"--prefs {prefs}: not a directory (a build-prefs --out folder) nor 'bundled'")
    res = evaluate_likelihood(model, adapter, prefs, dtype=dtype, batch_size=batch_size, n_boot=n_boot, seed=seed)
    path = write_likelihood(res, out)
    click.echo(format_likelihood(res))
    click.echo(f"wrote {path} ({res['seconds']['score']:.1f}s scoring)")


# --------------------------------------------------------------------------------------------- report
@cli.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "-o",
    "--out",
    "csv",
    type=click.Path(path_type=Path),
    default=Path("results/leaderboard.csv"),
    show_default=True,
    help="Leaderboard CSV (columns: results/SCHEMA.md).",
)
@click.option("--markdown", type=click.Path(path_type=Path), default=None, help="Also write a markdown table here.")
@click.option(
    "--plots",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write radar.png, heatmap.png and ecliptica_per_type.png into this folder.",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="RUN_DIR=NAME",
    help="Method name for a run (repeatable); runs given the same name form one row.",
)
def leaderboard_cmd(run_dirs, csv, markdown, plots, names):
    """One row per method over scored RUN_DIRS, sorted by IAE."""
    from .report.leaderboard import leaderboard_frame, load_methods, write_leaderboard

    name_map = {}
    for spec in names:
        run_dir, sep, name = spec.rpartition("=")
        if not sep or not run_dir or not name.strip():
            raise EclipticaError(f"--name {spec!r}: expected RUN_DIR=NAME")
        name_map[Path(run_dir)] = name.strip()
    methods = load_methods(run_dirs, name_map)
    df = leaderboard_frame(methods)
    for path in write_leaderboard(df, csv=csv, markdown=markdown, plots=plots, methods=methods):
        click.echo(f"wrote {path}")
    for _, r in df.iterrows():
        iae = "n/a" if r["iae_paper"] != r["iae_paper"] else f"{r['iae_paper']:.1f} (abs {r['iae_abs']:.1f})"
        lik = r["likelihood_switched"]
        click.echo(f"  {r['rank']:>2}. {r['method']:<40} IAE {iae}" + ("" if lik != lik else f"  likelihood switched {lik:.3f}"))
    used = df["iae_suites"].iloc[0]
    click.echo(f"  IAE over: {used.replace(';', ', ') if used else 'no suite with a Delta for every method'}")


@cli.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--samples",
    "samples",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Sample cases shown per suite and instruction type.",
)
def report_cmd(run_dir, samples):
    """Write a self-contained RUN_DIR/report.html (metrics with CIs, plots, sample responses)."""
    from .report.html import write_report

    click.echo(f"wrote {write_report(run_dir, samples)}")


# -------------------------------------------------------------------------------------------- score
def _judge_spec(spec: str, concurrency: int, timeout: float):
    """--judge URL,MODEL[,KEY_ENV[,NAME]] -> JudgeConfig."""
    from .scoring.judge import JudgeConfig

    parts = [p.strip() for p in spec.split(",")]
    if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
        raise click.BadParameter(f"{spec!r}: expected URL,MODEL[,KEY_ENV[,NAME]]", param_hint="--judge")
    parts += [""] * (4 - len(parts))
    return JudgeConfig(parts[0], parts[1], parts[2] or None, concurrency=concurrency, timeout_s=timeout, name=parts[3] or None)


@cli.command("score")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--judge-base-url", default=None, help="OpenAI-compatible endpoint of an LLM judge (optional).")
@click.option("--judge-model", default=None, help="Judge model name (required with --judge-base-url).")
@click.option(
    "--judge-api-key-env",
    default=None,
    help="Name of the environment variable holding the judge's API key; the key is never stored.",
)
@click.option("--judge-concurrency", type=int, default=16, show_default=True, help="Judge requests in flight.")
@click.option("--judge-timeout", type=float, default=60.0, show_default=True, help="Seconds per judge request.")
@click.option(
    "--judge",
    "judge_specs",
    multiple=True,
    metavar="URL,MODEL[,KEY_ENV[,NAME]]",
    help="A judge of the panel (repeatable; the reported verdict is the strict majority). KEY_ENV names "
    "the variable holding its API key (empty: none); NAME tells two judges on one model apart.",
)
@click.option("--embedder", default=None, help="Sentence-embedding model folder (default: the embedded all-MiniLM-L6-v2).")
@click.option("--bootstrap", "n_boot", type=int, default=10000, show_default=True, help="Bootstrap resamples (0 = no CIs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap and classifier seed.")
@click.option("--wait", is_flag=True, help="If another command is writing RUN_DIR, wait for it (default: exit 2).")
def score_cmd(
    run_dir,
    judge_base_url,
    judge_model,
    judge_api_key_env,
    judge_concurrency,
    judge_timeout,
    judge_specs,
    embedder,
    n_boot,
    seed,
    wait,
):
    """Score a run: RUN_DIR/scores.parquet (per case) and RUN_DIR/metrics.json (per suite, with CIs)."""
    from .scoring.judge import JudgeConfig
    from .scoring.score import score_run, summary_table

    judge = None
    if judge_base_url or judge_model:
        if not (judge_base_url and judge_model):
            raise click.UsageError("--judge-base-url and --judge-model go together")
        judge = JudgeConfig(
            judge_base_url, judge_model, judge_api_key_env, concurrency=judge_concurrency, timeout_s=judge_timeout
        )
    if judge_specs:
        judge = ([judge] if judge else []) + [_judge_spec(s, judge_concurrency, judge_timeout) for s in judge_specs]
    from .lock import run_dir_lock

    with run_dir_lock(run_dir, wait=wait):
        metrics = score_run(run_dir, judge=judge, embedder=embedder, n_boot=n_boot, seed=seed)
    click.echo(summary_table(metrics))
    click.echo(f"wrote {run_dir / 'scores.parquet'} and {run_dir / 'metrics.json'}")


@cli.command("judge-eval")
@click.option(
    "--gold",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Folder of gold *.yaml files (default: the bundled judges/gold).",
)
@click.option(
    "--judge",
    "judges",
    multiple=True,
    metavar="URL,MODEL[,KEY_ENV[,NAME]]",
    help="An OpenAI-compatible LLM judge (repeatable; several form a panel), as for `ecliptica score`.",
)
@click.option("--judge-concurrency", type=int, default=16, show_default=True, help="Judge requests in flight.")
@click.option("--judge-timeout", type=float, default=60.0, show_default=True, help="Seconds per judge request.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="First N gold entries per suite (default: all).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("judge_eval.json"),
    show_default=True,
    help="JSON output; the markdown table is written beside it (.md).",
)
def judge_eval_cmd(gold, judges, judge_concurrency, judge_timeout, limit, out):
    """Accuracy, Cohen's kappa and confusion tables of every detector (and judge) against the gold labels."""
    from .scoring.gold import judge_eval, markdown_table, write_report

    configs = [_judge_spec(s, judge_concurrency, judge_timeout) for s in judges]
    report = judge_eval(gold, judges=configs, limit=limit)
    click.echo(markdown_table(report))
    json_path, md_path = write_report(report, out)
    click.echo(f"wrote {json_path} and {md_path}")


@cli.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="JSON output (default: RUN_A/compare/<run B id>.json)."
)
@click.option("--bootstrap", "n_boot", type=int, default=10000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def compare_cmd(run_a, run_b, out, n_boot, seed):
    """Paired differences A - B per suite on the cases both scored runs share (bootstrap clustered by prompt)."""
    from .scoring.compare import compare_runs, format_compare, write_compare

    res = compare_runs(run_a, run_b, n_boot=n_boot, seed=seed)
    out = out or (run_a / "compare" / f"{res['run_b'] or run_b.name}.json")
    write_compare(res, out)
    click.echo(format_compare(res))
    click.echo(f"wrote {out}")


@cli.command("plan")
@click.option("--delta", type=float, required=True, help="The Delta (instructed - uninstructed headline) to detect.")
@click.option("--suite", required=True, help="Suite whose headline Delta is planned for.")
@click.option(
    "--from",
    "from_runs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Scored run(s) to estimate the per-prompt SD from (repeatable; several seed runs of one model "
    "also give the between-seed SD). Default: the suite's documented rough default.",
)
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Seeds to average over (K).")
@click.option(
    "--seed-sd",
    type=click.FloatRange(min=0),
    default=None,
    help="Between-seed SD of a run's Delta (default: from several --from runs, else 0).",
)
@click.option("--power", "power_", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8, show_default=True)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Two-sided significance level.",
)
def plan_cmd(delta, suite, from_runs, seeds, seed_sd, power_, alpha):
    """How many prompts (and seeds) detect a Delta of --delta on --suite (formula: scoring/power.py)."""
    from .scoring.power import format_plan, plan

    click.echo(format_plan(plan(suite, delta, from_runs, seeds=seeds, sd_seed=seed_sd, alpha=alpha, power=power_)))


@cli.command("iae")
@click.argument("gains", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write the result as JSON.")
def iae_cmd(gains, json_out):
    """Instruction-alignment efficiency from GAINS.csv, both forms: paper-compatible (relative, from the
    paper Deltas) and absolute (signed Deltas on fixed scales).

    Long form: method,suite,delta[,delta_paper] (delta = metrics.json `delta`, signed; delta_paper =
    `delta_paper`); wide form: method,<suite>,... of signed Deltas. Without delta_paper the paper Delta is
    |delta| for conditional_safety (the paper's |M3|) and delta elsewhere."""
    from .metrics import format_iae, iae, read_gains

    g = read_gains(gains)
    res = iae(g.paper, absolute_gains=g.signed)
    click.echo(format_iae(res))
    click.echo(g.note())
    if json_out:
        from .data.io import write_json

        write_json(json_out, res)


# ------------------------------------------------------------------------------------------- lm-eval
@cli.command("export-lm-eval")
@click.argument("data_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("lm_eval_tasks"),
    show_default=True,
    help="Folder for the task YAMLs (pass it to lm-eval as --include_path).",
)
@click.option("--max-new-tokens", type=int, default=None, help="max_gen_toks for every task (default: each suite's).")
@click.option("--suites", default=None, help="Comma list of suites to export (default: all in DATA_DIR).")
def export_lm_eval_cmd(data_dir, out, max_new_tokens, suites):
    """Write lm-evaluation-harness tasks over a built dataset (`--tasks ecliptica` runs the core suite)."""
    from .lmeval import GROUP, export_lm_eval, lm_eval_command

    names = [s.strip() for s in suites.split(",") if s.strip()] if suites else None
    rec = export_lm_eval(data_dir, out, max_new_tokens=max_new_tokens, suites=names)
    click.echo(f"wrote {out}")
    for t, info in rec["tasks"].items():
        click.echo(f"  {t:<32} {info['rows']:>6} cases  max_gen_toks {info['max_gen_toks']}")
    click.echo(f"  {GROUP:<32} group of the above")
    for t, mc in rec["mc_tasks"].items():
        click.echo(f"  {t:<32} {mc['questions']:>6} questions (MC1/MC2, scored by lm-eval)")
    click.echo(
        "run, then import:\n  "
        + lm_eval_command(Path(out).resolve())
        + f"\n  ecliptica import-lm-eval lm_eval_out --data {data_dir} --out runs"
    )


@cli.command("import-lm-eval")
@click.argument("samples_path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="The built dataset the tasks were exported from.",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--model-name", default=None, help="Model name for the run (default: from lm-eval's results file).")
@click.option("--run-id", default=None, help="Run id (default: model slug + hash of the generations).")
@click.option("--wait", is_flag=True, help="If another command is writing the run directory, wait for it (default: exit 2).")
def import_lm_eval_cmd(samples_path, data_dir, out, model_name, run_id, wait):
    """Turn lm-eval --log_samples output (a samples_*.jsonl file or its folder) into a run dir for `score`."""
    from .lmeval import import_lm_eval

    run_dir = import_lm_eval(samples_path, data_dir, out, model_name=model_name, run_id=run_id, wait=wait)
    click.echo(f"wrote {run_dir}\n  then: ecliptica score {run_dir}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
