"""Training step time, tokens per second and peak memory of CITA and DPO at the demo's settings, against the
old default trainer measured in the same run.

    new  this checkout's trainer: --dtype (auto = bf16 autocast only with native bf16, else fp32), the LM head
         on completion positions only, padding-free prompt-sharing batches, one reference forward per step
    old  the trainer as committed at --baseline-rev (default b21641d, before the speed work): fp32, trl's fused
         head over every position, batches padded to the longest row (cut at --max-length), the KL recomputed
         from captured hidden states. Its trainer.py and losses.py are taken from git and run over a copy of this
         checkout's package (so data loading and model resolution are the same).

Each (method, trainer) runs in a fresh subprocess, so its peak RSS (ru_maxrss: tracemalloc does not see torch's
allocations) is its own; the first --warmup steps are not timed. tokens/s counts non-padding tokens (trl's
num_tokens). The 1-minute load average is printed beside every row: on a shared machine a busy neighbour
inflates the time, so compare rows measured at similar load, and run it when the machine is idle.

    .venv/bin/python bench/train_step.py [--steps 4] [--warmup 1] [--methods cita,dpo] [--data DIR]
        [--batch-size 4 --lora-r 8 --lora-alpha 16 --lora-targets q_proj,v_proj --max-length 256]
        [--dtype auto] [--threads N] [--baseline-rev REV | --baseline-rev none] [--json OUT.json]

Settings default to the demo's (pipeline.DemoTraining). Without --data, the bundled switch pairs are built into
a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
BASELINE_REV = "b21641d"
FALLBACK = dict(
    batch_size=4, lora_r=8, lora_alpha=16, lora_targets="q_proj,k_proj,v_proj,o_proj", max_length=256, cita_kl_weight=0.05
)


def demo_settings() -> dict:
    try:
        from ecliptica_bench.pipeline import DemoTraining
    except Exception:  # the pipeline is optional here
        return dict(FALLBACK)
    t = DemoTraining()
    return dict(
        batch_size=t.batch_size,
        lora_r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_targets=",".join(t.lora_targets),
        max_length=t.max_length,
        cita_kl_weight=t.cita_kl_weight,
    )


def child(args) -> None:
    import logging

    import torch
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging

    import ecliptica_bench.train.trainer as trainer_mod
    from ecliptica_bench.train.prefs import load_prefs

    hf_logging.set_verbosity_error()
    logging.disable(logging.WARNING)
    os.environ["TQDM_DISABLE"] = "1"
    if args.threads:
        torch.set_num_threads(args.threads)
    times: list[float] = []
    cpu: list[float] = []
    tokens: list[float] = []
    terms: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t)
            cpu.append(time.process_time() - self.c)

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                tokens.append(float(logs.get("num_tokens", 0)))
                terms.append({k: logs.get(k) for k in ("loss", "dpo", "kl", "kl_weight")})

    rows = load_prefs(Path(args.data), "train")
    settings = dict(
        method=args.child,
        model=args.model,
        data=args.data,
        batch_size=args.batch_size,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        max_length=args.max_length,
        lora_targets=tuple(t for t in args.lora_targets.split(",") if t),
        max_steps=args.warmup + args.steps,
        lr=1e-4,
        seed=3407,
        kl_weight=args.kl_weight if args.child == "cita" else None,
    )
    if args.impl == "new":
        settings["dtype"] = args.dtype
    with tempfile.TemporaryDirectory() as tmp:
        cfg = trainer_mod.TrainConfig(out=tmp, **settings)
        cfg.check()
        trainer = trainer_mod.build_trainer(cfg, rows, Path(tmp) / "ckpt", callbacks=[Timer()])
        trainer.args.disable_tqdm = True
        trainer.train()
    timed = times[args.warmup :]
    per_step_tokens = [b - a for a, b in zip([0.0] + tokens, tokens)][args.warmup :]
    dtype = trainer_mod.resolve_dtype(args.dtype) if hasattr(trainer_mod, "resolve_dtype") else "float32"
    print(
        json.dumps(
            {
                "method": args.child,
                "impl": args.impl,
                "dtype": dtype,
                "trainer_file": trainer_mod.__file__,
                "seconds_per_step": sum(timed) / len(timed),
                "step_seconds": timed,
                "cpu_seconds_per_step": sum(cpu[args.warmup :]) / len(timed),
                "tokens_per_step": sum(per_step_tokens) / len(per_step_tokens) if per_step_tokens else None,
                "tokens_per_second": sum(per_step_tokens) / sum(timed) if per_step_tokens and sum(timed) else None,
                "peak_rss_mb": trainer_mod.peak_rss_mb(),
                "threads": torch.get_num_threads(),
                "last": terms[-1] if terms else None,
            }
        )
    )


def baseline_tree(rev: str, dest: Path) -> Path:
    """This checkout's package with train/trainer.py and train/losses.py as committed at `rev`."""
    shutil.copytree(REPO / "ecliptica_bench", dest / "ecliptica_bench", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("ecliptica_bench/train/trainer.py", "ecliptica_bench/train/losses.py"):
        proc = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{rel}"], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(
                f"--baseline-rev {rev}: cannot read {rel} from git ({proc.stderr.strip()}); "
                "pass --baseline-rev none to skip the old trainer"
            )
        (dest / rel).write_text(proc.stdout, encoding="utf-8")
    return dest


def main() -> None:
    demo = demo_settings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data", default=None, help="A build-prefs folder (default: bundled pairs, built to a temp dir).")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=demo["batch_size"])
    ap.add_argument("--lora-r", type=int, default=demo["lora_r"])
    ap.add_argument("--lora-alpha", type=int, default=demo["lora_alpha"])
    ap.add_argument("--lora-targets", default=demo["lora_targets"])
    ap.add_argument("--max-length", type=int, default=demo["max_length"])
    ap.add_argument("--kl-weight", type=float, default=demo["cita_kl_weight"], help="cita's lambda_KL.")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="The new trainer's dtype.")
    ap.add_argument("--methods", default="cita,dpo")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads in the children (0: torch's default). "
        "--threads 1 makes the CPU seconds per step nearly independent of other load on the machine.",
    )
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the old trainer, or 'none'.")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--impl", default="new", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    tmp = tempfile.TemporaryDirectory()
    if args.data is None:
        from ecliptica_bench.train.prefs import build_prefs

        args.data = str(Path(tmp.name) / "prefs")
        build_prefs(Path(args.data))
    impls = ["old", "new"] if args.baseline_rev.lower() != "none" else ["new"]
    old_tree = baseline_tree(args.baseline_rev, Path(tmp.name) / "baseline") if "old" in impls else None
    settings = {
        k: getattr(args, k)
        for k in (
            "model",
            "steps",
            "warmup",
            "batch_size",
            "lora_r",
            "lora_alpha",
            "lora_targets",
            "max_length",
            "kl_weight",
            "dtype",
            "threads",
            "baseline_rev",
        )
    }
    print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + f"; cpus {os.cpu_count()}")
    print(
        f"{'method':<6} {'trainer':<7} {'dtype':<9} {'s/step':>7} {'cpu s/step':>10} {'tok/step':>8} {'tok/s':>7} "
        f"{'peak RSS':>9}  {'load 1m before/after':<20} steps"
    )
    results: dict = {"settings": settings, "cpu_count": os.cpu_count(), "runs": []}
    by = {}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        for impl in impls:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                method,
                "--impl",
                impl,
                "--data",
                args.data,
                *[
                    x
                    for k in (
                        "model",
                        "steps",
                        "warmup",
                        "batch_size",
                        "lora_r",
                        "lora_alpha",
                        "lora_targets",
                        "max_length",
                        "kl_weight",
                        "dtype",
                        "threads",
                    )
                    for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))
                ],
            ]
            env = dict(os.environ, ECLIPTICA_DATA_ROOT=os.environ.get("ECLIPTICA_DATA_ROOT", str(REPO)))
            if impl == "old":
                env["PYTHONPATH"] = os.pathsep.join([str(old_tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            load_before = os.getloadavg()[0]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            load_after = os.getloadavg()[0]
            if proc.returncode != 0:
                sys.exit(f"{method} ({impl}) failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if impl == "old" and not r["trainer_file"].startswith(str(old_tree)):
                sys.exit(f"the old trainer did not load from {old_tree} (got {r['trainer_file']})")
            r.update(load_before=load_before, load_after=load_after)
            results["runs"].append(r)
            by[(method, impl)] = r
            tps = f"{r['tokens_per_second']:7.0f}" if r["tokens_per_second"] else f"{'-':>7}"
            tok = f"{r['tokens_per_step']:8.0f}" if r["tokens_per_step"] else f"{'-':>8}"
            print(
                f"{method:<6} {impl:<7} {r['dtype']:<9} {r['seconds_per_step']:7.2f} "
                f"{r['cpu_seconds_per_step']:10.2f} {tok} {tps} "
                f"{r['peak_rss_mb']:6.0f} MB  {load_before:5.2f} / {load_after:5.2f}       "
                f"{', '.join(f'{s:.2f}' for s in r['step_seconds'])}",
                flush=True,
            )
    speedups = {}
    for method in sorted({m for m, _ in by}):
        if (method, "old") in by and (method, "new") in by:
            old, new = by[(method, "old")], by[(method, "new")]
            speedups[method] = {
                "wall": old["seconds_per_step"] / new["seconds_per_step"],
                "cpu": old["cpu_seconds_per_step"] / new["cpu_seconds_per_step"],
            }
    if speedups:
        print("speed-up new vs old: " + ", ".join(f"{m} {v['wall']:.2f}x wall, {v['cpu']:.2f}x cpu" for m, v in speedups.items()))
    if ("cita", "new") in by and ("dpo", "new") in by:
        ratio = by[("cita", "new")]["seconds_per_step"] / by[("dpo", "new")]["seconds_per_step"]
        print(
            f"cita/dpo (new): time {ratio:.2f}x, memory "
            f"{by[('cita', 'new')]['peak_rss_mb'] / by[('dpo', 'new')]['peak_rss_mb']:.2f}x"
        )
        results["cita_over_dpo_time"] = ratio
    results["speedup"] = speedups
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp.cleanup()


if __name__ == "__main__":
    main()
