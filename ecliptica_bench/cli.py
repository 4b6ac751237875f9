"""The `ecliptica` command. Each command parses its flags and calls one stage function; stage modules
are imported lazily so `ecliptica --help` stays fast."""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from pathlib import Path

import click

from .errors import EclipticaError
from .models import DEFAULT_MODEL


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
    if not verbose:  # one INFO line per HTTP request (the judge sends thousands): only with -v
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)


# ------------------------------------------------------------------------------------- shared options
# Every option used by several commands is declared here, once, and applied with these decorators.
# Names: --output-dir for a folder, --output for a file; the old --out keeps working as a hidden alias
# (one release).


def options(*decorators):
    """Several click decorators as one (applied in the order listed, as if stacked)."""

    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def _renamed(flag: str, dest: str, default, required: bool, short: str | None, kind, help: str):
    """`flag` (e.g. --output-dir) into `dest`, plus the old --out as a hidden alias into the same place."""

    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, **kw):
            old = kw.pop(f"{dest}_old_out")
            given = click.get_current_context().get_parameter_source(dest) != click.core.ParameterSource.DEFAULT
            if old is not None:
                if given and Path(kw[dest]) != Path(old):
                    raise click.UsageError(f"--out is the old name of {flag}: give only {flag}")
                kw[dest] = old
            if kw[dest] is None and required:
                raise click.UsageError(f"Missing option '{flag}'.")
            return f(*args, **kw)

        wrapper = click.option("--out", f"{dest}_old_out", type=kind, default=None, hidden=True)(wrapper)
        names = [short, flag] if short else [flag]
        return click.option(*names, dest, type=kind, default=default, show_default=default is not None, help=help)(wrapper)

    return deco


def output_dir_option(default: Path | None = None, help: str = "Output folder.", required: bool = False, dest: str = "out"):
    """--output-dir: a folder (the old --out still works, hidden)."""
    return _renamed("--output-dir", dest, default, required, None, click.Path(path_type=Path, file_okay=False), help)


def output_option(default: Path | None = None, help: str = "Output file.", dest: str = "out", short: str | None = None):
    """--output: a file (the old --out still works, hidden)."""
    return _renamed("--output", dest, default, False, short, click.Path(path_type=Path, dir_okay=False), help)


def model_option(help: str = "Model folder, hub id or alias (smollm2-135m = the embedded model).", **kw):
    return click.option("--model", default=DEFAULT_MODEL, show_default=True, help=help, **kw)


def adapter_option(help: str = "LoRA adapter folder (hf, vllm).", **kw):
    return click.option("--adapter", default=None, help=help, **kw)


WEIGHT_DTYPES = ("auto", "float32", "bfloat16", "float16")


def dtype_option(choices=WEIGHT_DTYPES, help: str = "Weights precision (hf, vllm); part of the cache key."):
    return click.option("--dtype", type=click.Choice(list(choices)), default="auto", show_default=True, help=help)


def wait_option(what: str = "the run directory"):
    return click.option("--wait", is_flag=True, help=f"If another command is writing {what}, wait for it (default: exit 2).")


def dry_run_option(what: str):
    return click.option(
        "--dry-run",
        is_flag=True,
        help=f"Print the cases, requests and estimated tokens {what} would use, and stop: no model is loaded, "
        "nothing is sent or written.",
    )


def seed_option(default: int, help: str, name: str = "--seed", dest: str = "seed"):
    return click.option(name, dest, type=int, default=default, show_default=True, help=help)


def suites_option(default: str | None = "all"):
    return click.option("--suites", default=default, show_default=default is not None, help="Comma list of suites, or 'all'.")


def limit_option(help: str = "At most N cases per suite, in dataset order (whole prompts first)."):
    return click.option("--limit", type=click.IntRange(min=1), default=None, help=help)


def bootstrap_option(default: int = 10000, help: str = "Bootstrap resamples (0 = no CIs)."):
    return click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=default, show_default=True, help=help)


# what the model under test runs on: `run` and `eval`
model_options = options(
    model_option(help="Model folder, hub id or alias (smollm2-135m = the embedded model); the served name for openai."),
    adapter_option(),
    click.option(
        "--backend",
        type=click.Choice(["auto", "vllm", "hf", "openai"]),
        default="auto",
        show_default=True,
        help="auto = vllm if installed, else hf.",
    ),
    dtype_option(
        help="Weights precision (hf, vllm); part of the cache key. auto: hf = the config's dtype (fp32 for the "
        "embedded model), vllm = bfloat16 on CPU, vLLM's choice on a GPU."
    ),
    click.option(
        "--model-args",
        default=None,
        metavar="K=V,...",
        help="Engine arguments, as lm-eval's --model_args (values typed: int, float, true/false, None, text): to "
        "vLLM's LLM(...) (e.g. max_model_len=4096,gpu_memory_utilization=0.85,quantization=fp8) or transformers' "
        "from_pretrained(...) (e.g. attn_implementation=sdpa). Recorded in the manifest; those that can change "
        "outputs (all but memory/scheduling ones such as gpu_memory_utilization, enforce_eager, swap_space) are "
        "part of the run id and the cache key.",
    ),
    click.option(
        "--base-url",
        multiple=True,
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (openai). Give it several times for replicas "
        "of one model: requests are spread over them, and a server that goes down hands its requests to the others.",
    ),
    click.option(
        "--api-key-env",
        default=None,
        help="Name of the environment variable holding the server's API key (openai; it must be set). Default: "
        "OPENAI_API_KEY when set, else no key (local servers). The key is never stored.",
    ),
    click.option("--no-api-key", is_flag=True, help="Send no API key to the server (openai), even when OPENAI_API_KEY is set."),
    click.option(
        "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Requests in flight per server (openai)."
    ),
    click.option("--tensor-parallel-size", type=int, default=1, show_default=True, help="vllm."),
    click.option("--data-parallel-size", type=int, default=1, show_default=True, help="vllm."),
    click.option(
        "--distributed-executor-backend",
        type=click.Choice(["mp", "ray"]),
        default=None,
        help="vllm: how its workers run. mp = processes on this node (one node, several GPUs); ray = a Ray "
        "cluster (several nodes). Default: vLLM's choice (one GPU needs none).",
    ),
)

# which cases, and how they are sampled: `run` and `eval`
generation_options = options(
    suites_option(),
    limit_option(),
    click.option(
        "--condition",
        type=click.Choice(["instructed", "uninstructed", "both"]),
        default="both",
        show_default=True,
        help="uninstructed = the same user prompt with no alignment instruction.",
    ),
    seed_option(42, "Sampling seed."),
    click.option("--temperature", type=float, default=0.7, show_default=True, help="0 = greedy."),
    click.option("--top-p", "top_p", type=float, default=0.9, show_default=True),
    click.option("--max-new-tokens", type=int, default=None, help="Default: each suite's paper budget (150-512)."),
    click.option("--batch-size", type=int, default=None, help="Requests per batch (default: the backend's)."),
    click.option(
        "--data",
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        default=None,
        help="A built dataset (build-dataset); default: the bundled banks built in memory, seed 42.",
    ),
    click.option("--run-id", default=None, help="Run directory name (default: the model and a hash of the resolved config)."),
)

JUDGE_SPEC = "URL,MODEL[,KEY_ENV[,NAME]]"

# the LLM judge panel: `score`, `eval`, `judge-eval`
judge_options = options(
    click.option(
        "--judge",
        "judge_specs",
        multiple=True,
        metavar=JUDGE_SPEC,
        help="An OpenAI-compatible LLM judge (repeatable: a panel; the reported verdict is the strict majority). "
        "KEY_ENV names the variable holding its API key (default: OPENAI_API_KEY when set, else none; 'none': send "
        "no key); NAME tells two judges on one model apart.",
    ),
    click.option(
        "--judge-concurrency", type=click.IntRange(min=1), default=16, show_default=True, help="Judge requests in flight."
    ),
    click.option("--judge-timeout", type=float, default=60.0, show_default=True, help="Seconds per judge request."),
)

# the older one-judge spelling of --judge (score and eval)
judge_url_options = options(
    click.option("--judge-base-url", default=None, help="OpenAI-compatible endpoint of an LLM judge (or use --judge)."),
    click.option("--judge-model", default=None, help="Judge model name (required with --judge-base-url)."),
    click.option(
        "--judge-api-key-env",
        default=None,
        help="Name of the environment variable holding the judge's API key (default: OPENAI_API_KEY when set; "
        "'none': no key); the key is never stored.",
    ),
)


def scoring_options(seed_flag: str):
    """How a run is scored: `score` (bootstrap seed --seed) and `eval` (--score-seed, beside the sampling --seed)."""
    return options(
        click.option(
            "--embedder", default=None, help="Sentence-embedding model folder (default: the embedded all-MiniLM-L6-v2)."
        ),
        bootstrap_option(),
        seed_option(0, "Bootstrap and classifier seed.", name=seed_flag, dest="score_seed"),
        click.option(
            "--detector",
            "detector_specs",
            multiple=True,
            metavar="KIND=MODEL[:LABEL]",
            help="A replacement detector (repeatable, one per kind: refusal, hedging): a Hugging Face sequence-"
            "classification model id or folder, run through transformers (GPU when available); :LABEL names its "
            "positive label when config.id2label leaves it ambiguous. Its rates are reported beside the keyword and "
            "learned detectors'.",
        ),
        click.option(
            "--detector-validation",
            "detector_validation",
            multiple=True,
            metavar="KIND=FILE",
            help="Validation figures of the --detector of KIND, a JSON file: {tp, fn, tn, fp} or {pooled: SET, "
            "validation: {SET: {tp, fn, tn, fp}}}. Without it that detector's corrected rates are unscored.",
        ),
    )


# ---------------------------------------------------------------------------------------------- build
@cli.command("build-dataset")
@output_dir_option(help="Output folder.", required=True)
@seed_option(42, "Dataset seed (sampling of prompts and instructions).")
@click.option("--format", "formats", default="parquet,jsonl", show_default=True, help="Comma list: parquet, jsonl.")
@suites_option()
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
    """Build the benchmark suites into OUTPUT_DIR (parquet + jsonl, card, manifest)."""
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
@output_dir_option(Path("demo"), "Everything the demo makes goes here.")
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
@bootstrap_option(1000)
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
RUNS = Path("runs")


def run_options(kw: dict):
    """The run's RunOptions from the command's parameters (`run` and `eval`)."""
    from dataclasses import fields

    from .run import RunOptions

    unknown = set(kw) - {f.name for f in fields(RunOptions)}
    if unknown:  # a parameter no step takes: a bug in a decorator, never silently dropped
        raise TypeError(f"not RunOptions fields: {sorted(unknown)}")
    return RunOptions(**kw, cli_args=sys.argv[1:])


@cli.command("run")
@model_options
@generation_options
@output_dir_option(RUNS, "Runs go to OUTPUT_DIR/<run_id>/.")
@wait_option()
@dry_run_option("the run")
def run_cmd(dry_run, **kw):
    """Generate responses for every case (and condition) into OUTPUT_DIR/<run_id>/; reruns fill in only what is missing."""
    from .run import estimate, format_estimate, format_summary, run

    opts = run_options(kw)
    if dry_run:
        click.echo(format_estimate(estimate(opts)))
        return
    summary = run(opts)
    click.echo(format_summary(summary))
    if summary["unresolved"]:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- train
@cli.command("build-prefs")
@output_dir_option(help="Output folder.", required=True)
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
@model_option(help="HF model folder, hub id or alias.")
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="A preference set from `ecliptica build-prefs`.",
)
@click.option(
    "--output-dir",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Output folder (required unless --eval-only).",
)
@click.option(
    "--output",
    "eval_output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="With --eval-only: also write the JSON here.",
)
@click.option("--out", "old_out", type=click.Path(path_type=Path), default=None, hidden=True)
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
@seed_option(3407, "Training seed.")
@click.option(
    "--prompt-format",
    type=click.Choice(["chat", "block"]),
    default="chat",
    show_default=True,
    help="chat: system=instruction, user=prompt (as evaluated); block: the paper's ### Alignment Instruction block.",
)
@click.option("--merge", is_flag=True, help="Also save the adapter merged into a full model (OUTPUT_DIR/merged).")
@click.option("--save-steps", type=int, default=0, show_default=True, help="Checkpoint every N steps (0 = none).")
@click.option("--resume", is_flag=True, help="Continue the run in OUTPUT_DIR from its last checkpoint.")
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for memory.")
@dtype_option(
    ("auto", "float32", "bfloat16"),
    help="bfloat16: bf16 autocast; auto: bf16 where the GPU/CPU has native bf16 (AVX512-BF16/AMX), else "
    "float32. The choice is recorded in OUTPUT_DIR/train_config.json and summary.json.",
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
@click.option(
    "--eval-heldout", is_flag=True, help="Held-out preference accuracy before and after training (OUTPUT_DIR/pref_eval.json)."
)
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

    old_out, eval_output = kw.pop("old_out"), kw.pop("eval_output")
    if old_out is not None:  # the old --out: the folder when training, the JSON file with --eval-only
        if kw["eval_only"]:
            eval_output = eval_output or old_out
        else:
            kw["out"] = kw["out"] or old_out
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
        if eval_output:
            from .data.io import atomic_write_text

            atomic_write_text(Path(eval_output), text + "\n")
        click.echo(text)
        return
    if kw["out"] is None:
        raise click.UsageError("--output-dir is required for training")
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
@model_option(help="HF model folder, hub id or alias.")
@adapter_option(help="LoRA adapter folder (or an `ecliptica train --output-dir` folder).")
@click.option(
    "--prefs",
    default="bundled",
    show_default=True,
    help="A preference set from `ecliptica build-prefs` (its heldout split), or bundled: the bundled "
    "switch pairs split as build-prefs does by default.",
)
@output_dir_option(
    help="Run directory for likelihood.json: an `ecliptica run` directory of the same model, or a new one "
    "(default: runs/<model>-<hash>)."
)
@dtype_option(help="Weights precision, as `ecliptica run --backend hf` (auto: the config's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Rows per forward pass.")
@bootstrap_option()
@seed_option(0, "Bootstrap seed.")
def likelihood_cmd(model, adapter, prefs, out, dtype, batch_size, n_boot, seed):
    """Sampling-free switching: does each instruction of a held-out switch pair make its own response more
    likely than the other one (teacher-forced log-likelihoods, no generation)? Writes RUN_DIR/likelihood.json."""
    from .likelihood import evaluate_likelihood, format_likelihood, write_likelihood

    if prefs != "bundled" and not Path(prefs).is_dir():
        raise EclipticaError(f"--prefs {prefs}: not a directory (a build-prefs --output-dir folder) nor 'bundled'")
    res = evaluate_likelihood(model, adapter, prefs, dtype=dtype, batch_size=batch_size, n_boot=n_boot, seed=seed)
    path = write_likelihood(res, out)
    click.echo(format_likelihood(res))
    click.echo(f"wrote {path} ({res['seconds']['score']:.1f}s scoring)")


# --------------------------------------------------------------------------------------------- report
@cli.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@output_option(Path("results/leaderboard.csv"), "Leaderboard CSV (columns: results/SCHEMA.md).", dest="csv", short="-o")
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
        raise click.BadParameter(f"{spec!r}: expected {JUDGE_SPEC}", param_hint="--judge")
    parts += [""] * (4 - len(parts))
    return JudgeConfig(
        parts[0],
        parts[1],
        parts[2] or None,
        concurrency=concurrency,
        timeout_s=timeout,
        name=parts[3] or None,
        key_flag=f"KEY_ENV in --judge {JUDGE_SPEC}",
    )


def judges_from(kw: dict) -> list:
    """The judge panel from judge_options (+ judge_url_options), popped from the command's parameters."""
    from .scoring.judge import JudgeConfig

    concurrency, timeout = kw.pop("judge_concurrency"), kw.pop("judge_timeout")
    base_url, model, key_env = kw.pop("judge_base_url", None), kw.pop("judge_model", None), kw.pop("judge_api_key_env", None)
    judges = []
    if base_url or model:
        if not (base_url and model):
            raise click.UsageError("--judge-base-url and --judge-model go together")
        judges.append(JudgeConfig(base_url, model, key_env, concurrency=concurrency, timeout_s=timeout))
    return judges + [_judge_spec(s, concurrency, timeout) for s in kw.pop("judge_specs")]


def judging_estimate(run_dir: Path, judges) -> str:
    """score --dry-run: the judge requests RUN_DIR's generations still need."""
    from .evaluate import estimate_judging, format_judging
    from .rundir import read_generations
    from .store import RunStore

    df = read_generations(run_dir)
    rows = {s: g.to_dict("records") for s, g in df.groupby("suite", sort=False)}
    with RunStore(run_dir) as store:
        est = estimate_judging(rows, judges, store)
    return f"dry run: scoring {run_dir} ({len(df)} rows; nothing judged, nothing written)\n" + format_judging(est)


@cli.command("score")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@judge_options
@judge_url_options
@scoring_options("--seed")
@wait_option("RUN_DIR")
@dry_run_option("judging")
def score_cmd(run_dir, embedder, n_boot, score_seed, detector_specs, detector_validation, wait, dry_run, **kw):
    """Score a run: RUN_DIR/scores.parquet (per case) and RUN_DIR/metrics.json (per suite, with CIs)."""
    from .lock import run_dir_lock
    from .scoring.detect import parse_specs
    from .scoring.score import score_run, summary_table

    judges = judges_from(kw)
    specs, validation = parse_specs(detector_specs, detector_validation)
    if dry_run:
        click.echo(judging_estimate(run_dir, judges))
        return
    with run_dir_lock(run_dir, wait=wait):
        metrics = score_run(
            run_dir,
            judge=judges or None,
            embedder=embedder,
            n_boot=n_boot,
            seed=score_seed,
            detectors=specs,
            detector_validation=validation,
        )
    click.echo(summary_table(metrics))
    click.echo(f"wrote {run_dir / 'scores.parquet'} and {run_dir / 'metrics.json'}")


# --------------------------------------------------------------------------------------------- eval
@cli.command("eval")
@model_options
@generation_options
@judge_options
@judge_url_options
@scoring_options("--score-seed")
@click.option(
    "--samples", type=click.IntRange(min=0), default=3, show_default=True, help="Report: sample cases per suite and type."
)
@click.option(
    "--seeds",
    default=None,
    metavar="S1,S2,...",
    help="Sampling seeds, one run each (replaces --seed); the board averages them into the model's one row "
    "(with a CI that includes the seed-to-seed spread).",
)
@output_dir_option(RUNS, "Runs go to OUTPUT_DIR/<run_id>/; the board to OUTPUT_DIR/leaderboard.csv and .md.")
@wait_option()
@dry_run_option("the run and its judging")
def eval_cmd(dry_run, embedder, n_boot, score_seed, detector_specs, detector_validation, samples, seeds, **kw):
    """Run, score and report a model, and put its row on OUTPUT_DIR's leaderboard: `run`, `score`, `report`
    and `leaderboard` in one command. Resumable: run it again and it generates and judges only what is missing."""
    from dataclasses import replace

    from .evaluate import eval_table, evaluate
    from .scoring.detect import parse_specs

    judges = judges_from(kw)
    specs, validation = parse_specs(detector_specs, detector_validation)
    opts = run_options(kw)
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()] if seeds else [opts.seed]
    except ValueError:
        raise click.BadParameter(f"{seeds!r}: expected integers separated by commas", param_hint="--seeds") from None
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise click.BadParameter(f"{seeds!r}: give each seed once", param_hint="--seeds")
    if dry_run:
        from .evaluate import estimate_judging, format_judging
        from .run import estimate, format_estimate

        for seed in seed_list:
            e = estimate(replace(opts, seed=seed))
            click.echo(format_estimate(e))
            rows = {s: [{**p.case, "condition": p.condition, "response": ""} for p in items] for s, items in e["planned"].items()}
            budgets = {s: p.max_new_tokens for s, p in e["params"].items()}
            click.echo(
                format_judging(estimate_judging(rows, judges, response_tokens=budgets), note=", responses at max_new_tokens")
            )
        return
    from .run import format_summary

    for seed in seed_list:
        res = evaluate(
            replace(opts, seed=seed),
            judges,
            embedder=embedder,
            n_boot=n_boot,
            score_seed=score_seed,
            samples=samples,
            detectors=specs,
            detector_validation=validation,
        )
        click.echo(format_summary(res["summary"]))
        if res["metrics"] is None:
            click.echo("not scored: some generations failed; run the same command again to retry them", err=True)
            sys.exit(1)
        click.echo("")
        click.echo(eval_table(res["metrics"]))
        click.echo(f"report: {res['report']}")
    row = res["row"]
    if row is not None:
        import pandas as pd

        iae = row["iae_paper"]
        n_seeds = 1 if pd.isna(row.get("seeds")) else int(row["seeds"])
        click.echo(
            f"board: {row['method']} is number {row['rank']} of {opts.out}"
            + (f" (mean over {n_seeds} seeds)" if n_seeds > 1 else "")
            + ("" if pd.isna(iae) else f", IAE {iae:.1f} over {row['iae_suites'].replace(';', ', ')}")
        )
    click.echo(f"leaderboard: {' and '.join(str(p) for p in res['board'])}")


@cli.command("judge-eval")
@click.option(
    "--gold",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Folder of gold *.yaml files (default: the bundled judges/gold).",
)
@judge_options
@limit_option("First N gold entries per suite (default: all).")
@click.option(
    "--detector",
    "detector_specs",
    multiple=True,
    metavar="KIND=SPEC",
    help="Also evaluate this detector (repeatable): KIND refusal|hedging, SPEC keyword|learned|an HF sequence-"
    "classification model id or folder.",
)
@output_option(Path("judge_eval.json"), "JSON output; the markdown table is written beside it (.md).")
def judge_eval_cmd(gold, limit, detector_specs, out, **kw):
    """Every detector (keyword, learned, --detector) on the external held-out sets (the figures measured when the
    detectors were built) and, with every judge, on the bundled in-house gold set: n, accuracy, Cohen's kappa,
    sensitivity, specificity, per source model where the set has them; confusion tables on the gold set."""
    from .scoring.detect import parse_specs
    from .scoring.gold import judge_eval, markdown_table, write_report

    specs, _ = parse_specs(detector_specs)
    configs = judges_from(kw)
    report = judge_eval(gold, judges=configs, limit=limit, extra={k: [v] for k, v in specs.items()})
    click.echo(markdown_table(report))
    json_path, md_path = write_report(report, out)
    click.echo(f"wrote {json_path} and {md_path}")


@cli.command("build-detectors")
@click.option("--kind", "kinds", multiple=True, help="Rebuild only this kind (repeatable; default: every registered kind).")
@click.option(
    "--xstest",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Folder holding the XSTest v2 completion files (default: download them at the pinned commit).",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME=DIR",
    help="Folder holding the files of a named source (repeatable; `--xstest DIR` = `--source xstest-v2=DIR`).",
)
@output_dir_option(help="Output folder (default: the package's detectors/weights, what ships).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--embedder", default=None, help="MiniLM folder (default: the embedded all-MiniLM-L6-v2).")
def build_detectors_cmd(kinds, xstest, sources, out, seed, embedder):
    """Rebuild the learned detectors' weights and manifest from their pinned public sources (sha256-checked)."""
    from .detectors.build import build
    from .detectors.features import MINILM, is_minilm
    from .scoring.embed import Embedder

    local: dict[str, Path] = {}
    for item in sources:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            raise EclipticaError(f"--source {item!r}: expected NAME=DIR with an existing folder")
        local[name.strip()] = Path(folder)
    if xstest is not None:
        local["xstest-v2"] = xstest
    emb = Embedder(embedder)
    if not is_minilm(emb):
        raise EclipticaError(f"--embedder {embedder}: the detectors are built on {MINILM}, not {emb.id}")
    manifest = build(list(kinds) or None, local, emb.encode, out_dir=out, seed=seed, log=click.echo)
    for name, rec in sorted(manifest["detectors"].items()):
        fig = (rec.get("validation") or {}).get(rec.get("pooled") or "")
        if fig:
            click.echo(f"{name}: {rec['pooled']} n={fig['n']} accuracy={fig['accuracy']:.3f} kappa={fig['kappa']:.3f}")
    click.echo(f"wrote {Path(out) if out else 'ecliptica_bench/detectors/weights'}")


@cli.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(path_type=Path, exists=True, file_okay=False))
@output_option(help="JSON output (default: RUN_A/compare/<run B id>.json).")
@bootstrap_option()
@seed_option(0, "Bootstrap seed.")
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
@output_dir_option(Path("lm_eval_tasks"), "Folder for the task YAMLs (pass it to lm-eval as --include_path).")
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
        + f"\n  ecliptica import-lm-eval lm_eval_out --data {data_dir} --output-dir runs"
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
@output_dir_option(RUNS, "The run goes to OUTPUT_DIR/<run_id>/.")
@click.option("--model-name", default=None, help="Model name for the run (default: from lm-eval's results file).")
@click.option("--run-id", default=None, help="Run id (default: model slug + hash of the generations).")
@wait_option()
def import_lm_eval_cmd(samples_path, data_dir, out, model_name, run_id, wait):
    """Turn lm-eval --log_samples output (a samples_*.jsonl file or its folder) into a run dir for `score`."""
    from .lmeval import import_lm_eval

    run_dir = import_lm_eval(samples_path, data_dir, out, model_name=model_name, run_id=run_id, wait=wait)
    click.echo(f"wrote {run_dir}\n  then: ecliptica score {run_dir}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
