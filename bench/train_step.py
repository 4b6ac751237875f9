"""Training step time of DPO and CITA at the demo's settings, with where it goes, against the trainer as it was
before (--baseline-rev), measured in the same run.

    new  this checkout's trainer: --dtype (auto = bf16 autocast only with native bf16, else fp32), the LM head on
         completion positions only, padding-free prompt-sharing batches, one reference pass per step whose
         completion hidden states are kept (RefCache) so a later pass over the same pairs skips the reference
         backbone
    old  train/trainer.py, losses.py and packing.py as committed at --baseline-rev (default 34f7b22: the trainer
         before the reference cache), run over a copy of this checkout's package (same data loading and model
         resolution). --baseline-rev b21641d is the trainer before any speed work (fp32, trl's head over every
         position, padded batches).

Each trainer runs in its own subprocess and, like the demo, trains the methods one after the other in that
process (default dpo then cita, the same seed, so cita sees the batches dpo saw: the demo's 1-epoch runs do the
same). Per method: the first --warmup steps are not timed; s/step and CPU s/step; tokens/s (non-padding tokens,
trl's num_tokens); peak RSS of the process so far (ru_maxrss; tracemalloc does not see torch); and the breakdown
of a timed step, where the trainer has a FusedHead:
    ref bb / ref head   reference backbone forward (0 when served from the cache) / its LM-head projection
    pol bb / pol head   policy backbone forward / its head (log-probs, KL, trl's metrics)
    backward            loss.backward() (policy backbone and head), i.e. training_step - compute_loss
    other               the rest of the step: optimizer, scheduler, logging, collation (step - training_step)
The 1-minute load average is printed before and after each trainer: on a shared machine a busy neighbour
inflates the time, so compare rows measured at similar load (the ratios come from one run).

    .venv/bin/python bench/train_step.py [--steps 4] [--warmup 1] [--methods dpo,cita] [--data DIR]
        [--batch-size 4 --lora-r 8 --lora-alpha 16 --lora-targets q_proj,v_proj --max-length 256]
        [--dtype auto] [--threads N] [--baseline-rev REV | --baseline-rev none] [--json OUT.json]

Settings default to the demo's (pipeline.DemoTraining). Without --data, the bundled switch pairs are built into
a temporary folder first. The last lines estimate one epoch's training time per method from the measured s/step.
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
BASELINE_REV = "34f7b22"
FALLBACK = dict(
    batch_size=4,
    lora_r=8,
    lora_alpha=16,
    lora_targets="q_proj,k_proj,v_proj,o_proj",
    max_length=256,
    cita_kl_weight=0.5,
    sft_weight=1.0,
    lr=2e-3,
)
PARTS = ("ref_bb", "ref_head", "pol_bb", "pol_head", "backward", "other")


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
        sft_weight=t.sft_weight,
        lr=t.lr,
    )


class Breakdown:
    """Wall seconds per part of the step (PARTS), summed over the timed steps, by wrapping the trainer's pieces."""

    def __init__(self, trainer, trainer_mod):
        self.t = dict.fromkeys(PARTS + ("compute_loss", "training_step"), 0.0)
        self.on = False
        head = getattr(trainer, "head", None)
        self.available = head is not None
        wrap = self._wrap
        trainer.compute_loss = wrap(trainer.compute_loss, lambda: "compute_loss")
        trainer.training_step = wrap(trainer.training_step, lambda: "training_step")
        if head is not None:
            backbone = head.model.base_model
            backbone.forward = wrap(backbone.forward, lambda: "ref_bb" if head.mode == "ref" else "pol_bb")
            trainer_mod.completion_head = wrap(
                trainer_mod.completion_head, lambda: "ref_head" if head.mode == "ref" else "pol_head"
            )

    def _wrap(self, fn, part):
        def timed(*a, **k):
            if not self.on:
                return fn(*a, **k)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[part()] += time.perf_counter() - t0

        return timed

    def per_step(self, steps: int, step_seconds: float) -> dict | None:
        if not self.available or not steps:
            return None
        t = {k: v / steps for k, v in self.t.items()}
        t["backward"] = t["training_step"] - t["compute_loss"]
        t["other"] = step_seconds - t["training_step"]
        return {k: t[k] for k in PARTS}


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
    rows = load_prefs(Path(args.data), "train")
    for method in args.child.split(","):
        times: list[float] = []
        cpu: list[float] = []
        tokens: list[float] = []
        terms: list[dict] = []
        breakdown: list[Breakdown] = []

        class Timer(TrainerCallback):
            def on_step_begin(self, a, state, control, **kw):
                breakdown[0].on = len(times) >= args.warmup
                self.t, self.c = time.perf_counter(), time.process_time()

            def on_step_end(self, a, state, control, **kw):
                times.append(time.perf_counter() - self.t)
                cpu.append(time.process_time() - self.c)
                breakdown[0].on = False

            def on_log(self, a, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    tokens.append(float(logs.get("num_tokens", 0)))
                    terms.append({k: logs.get(k) for k in ("loss", "dpo", "kl", "kl_weight")})

        settings = dict(
            method=method,
            model=args.model,
            data=args.data,
            batch_size=args.batch_size,
            lora_r=args.lora_r,
            lora_alpha=args.lora_alpha,
            max_length=args.max_length,
            lora_targets=tuple(t for t in args.lora_targets.split(",") if t),
            max_steps=args.warmup + args.steps,
            lr=args.lr,
            sft_weight=args.sft_weight,
            seed=3407,
            kl_weight=args.kl_weight if method == "cita" else None,
        )
        if args.impl == "new":
            settings["dtype"] = args.dtype
        with tempfile.TemporaryDirectory() as tmp:
            cfg = trainer_mod.TrainConfig(out=tmp, **settings)
            cfg.check()
            trainer = trainer_mod.build_trainer(cfg, rows, Path(tmp) / "ckpt", callbacks=[Timer()])
            breakdown.append(Breakdown(trainer, trainer_mod))
            trainer.args.disable_tqdm = True
            trainer.train()
        timed = times[args.warmup :]
        per_step_tokens = [b - a for a, b in zip([0.0] + tokens, tokens)][args.warmup :]
        dtype = trainer_mod.resolve_dtype(args.dtype) if hasattr(trainer_mod, "resolve_dtype") else "float32"
        cache = getattr(getattr(trainer, "head", None), "ref_cache", None)
        print(
            json.dumps(
                {
                    "method": method,
                    "impl": args.impl,
                    "dtype": dtype,
                    "trainer_file": trainer_mod.__file__,
                    "seconds_per_step": sum(timed) / len(timed),
                    "step_seconds": timed,
                    "cpu_seconds_per_step": sum(cpu[args.warmup :]) / len(timed),
                    "tokens_per_step": sum(per_step_tokens) / len(per_step_tokens) if per_step_tokens else None,
                    "tokens_per_second": sum(per_step_tokens) / sum(timed) if per_step_tokens and sum(timed) else None,
                    "breakdown": breakdown[0].per_step(len(timed), sum(timed) / len(timed)),
                    "ref_cache_hits": cache.hits if cache is not None else None,
                    "peak_rss_mb": trainer_mod.peak_rss_mb(),
                    "threads": torch.get_num_threads(),
                    "train_rows": len(rows),
                    "last": terms[-1] if terms else None,
                }
            ),
            flush=True,
        )
        del trainer


def baseline_tree(rev: str, dest: Path) -> Path:
    """This checkout's package with train/trainer.py, losses.py and packing.py as committed at `rev`."""
    shutil.copytree(REPO / "ecliptica_bench", dest / "ecliptica_bench", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("ecliptica_bench/train/trainer.py", "ecliptica_bench/train/losses.py", "ecliptica_bench/train/packing.py"):
        proc = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{rel}"], capture_output=True, text=True)
        if proc.returncode != 0 and rel.endswith("packing.py"):
            continue  # a trainer from before packing does not import it
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
    ap.add_argument("--sft-weight", type=float, default=demo["sft_weight"])
    ap.add_argument("--lr", type=float, default=demo["lr"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="The new trainer's dtype.")
    ap.add_argument("--methods", default="dpo,cita", help="Trained in this order in one process per trainer.")
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
    keys = (
        "model",
        "steps",
        "warmup",
        "batch_size",
        "lora_r",
        "lora_alpha",
        "lora_targets",
        "max_length",
        "kl_weight",
        "sft_weight",
        "lr",
        "dtype",
        "threads",
    )
    settings = {k: getattr(args, k) for k in keys + ("baseline_rev",)}
    print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + f"; cpus {os.cpu_count()}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results: dict = {"settings": settings, "cpu_count": os.cpu_count(), "runs": []}
    by = {}
    for impl in impls:
        cmd = [sys.executable, __file__, "--child", ",".join(methods), "--impl", impl, "--data", args.data]
        cmd += [x for k in keys for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))]
        env = dict(os.environ, ECLIPTICA_DATA_ROOT=os.environ.get("ECLIPTICA_DATA_ROOT", str(REPO)))
        if impl == "old":
            env["PYTHONPATH"] = os.pathsep.join([str(old_tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        load_before = Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else os.getloadavg()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        load_after = Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else os.getloadavg()
        if proc.returncode != 0:
            sys.exit(f"{impl} trainer failed:\n{proc.stderr[-3000:]}")
        runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"method"')]
        print(
            f"\n{impl} trainer ({args.baseline_rev if impl == 'old' else 'this checkout'}): load average before "
            f"[{load_before}] after [{load_after}]"
        )
        print(
            f"  {'method':<6} {'dtype':<9} {'s/step':>7} {'cpu s':>6} {'tok/step':>8} {'tok/s':>6} {'RSS MB':>7}  "
            + " ".join(f"{p:>8}" for p in PARTS)
            + "  steps"
        )
        for r in runs:
            if impl == "old" and not r["trainer_file"].startswith(str(old_tree)):
                sys.exit(f"the old trainer did not load from {old_tree} (got {r['trainer_file']})")
            r.update(load_before=load_before, load_after=load_after)
            results["runs"].append(r)
            by[(r["method"], impl)] = r
            tps = f"{r['tokens_per_second']:6.0f}" if r["tokens_per_second"] else f"{'-':>6}"
            tok = f"{r['tokens_per_step']:8.0f}" if r["tokens_per_step"] else f"{'-':>8}"
            parts = r.get("breakdown") or {}
            print(
                f"  {r['method']:<6} {r['dtype']:<9} {r['seconds_per_step']:7.2f} {r['cpu_seconds_per_step']:6.2f} "
                f"{tok} {tps} {r['peak_rss_mb']:7.0f}  "
                + " ".join(f"{parts[p]:8.2f}" if p in parts else f"{'-':>8}" for p in PARTS)
                + f"  {', '.join(f'{x:.2f}' for x in r['step_seconds'])}",
                flush=True,
            )
    print()
    speedups = {}
    for method in methods:
        if (method, "old") in by and (method, "new") in by:
            old, new = by[(method, "old")], by[(method, "new")]
            speedups[method] = {
                "old": old["seconds_per_step"],
                "new": new["seconds_per_step"],
                "wall": old["seconds_per_step"] / new["seconds_per_step"],
                "cpu": old["cpu_seconds_per_step"] / new["cpu_seconds_per_step"],
            }
            print(
                f"{method}: before {old['seconds_per_step']:.2f} s/step, after {new['seconds_per_step']:.2f} s/step: "
                f"{speedups[method]['wall']:.2f}x wall, {speedups[method]['cpu']:.2f}x cpu"
            )
    if len(speedups) > 1:
        o, n = sum(v["old"] for v in speedups.values()), sum(v["new"] for v in speedups.values())
        print(f"{' + '.join(speedups)} together: before {o:.2f} s, after {n:.2f} s per step of each: {o / n:.2f}x")
        results["speedup_all"] = o / n
    rows = next(iter(by.values()))["train_rows"] if by else 0
    steps_epoch = -(-rows // args.batch_size)
    for impl in impls:
        est = {m: by[(m, impl)]["seconds_per_step"] * steps_epoch for m in methods if (m, impl) in by}
        if est:
            print(
                f"one epoch ({rows} rows = {steps_epoch} steps of {args.batch_size}), {impl} trainer: "
                + ", ".join(f"{m} ~{v:.0f} s" for m, v in est.items())
                + f", {sum(est.values()) / 60:.1f} min in all (measured s/step x steps; the steps timed here are "
                f"the first {args.warmup + args.steps} batches)"
            )
    results["speedup"] = speedups
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp.cleanup()


if __name__ == "__main__":
    main()
