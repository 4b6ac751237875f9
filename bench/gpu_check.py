"""The parts of the GPU readiness check (issue 17); bench/gpu_check.sh runs each in its own process.

    python bench/gpu_check.py env|model|hf|train|vllm --work DIR [--model NAME] [options]

No weights travel to a GPU machine (only the repo's working tree does, at most 64 MiB), so `model` builds a
random-weight model from bench/gpu_assets: a config (SmolLM2-135M's, SmolLM2-1.7B's shape, or a tiny one for
the CPU smoke run) plus SmolLM2's real tokenizer and chat template, saved in bf16 as an HF folder under
DIR/models/NAME. Random weights have the real shapes and speed; two things differ from a trained model:
- the configs untie the output head from the embeddings (SmolLM2 ties them): with tied random weights the
  model copies its last input token, so every case would answer "\n\n\n..." and agreement would check
  nothing; untied, each case gets its own output (the head's compute is the same either way);
- next-token distributions are nearly flat, so under bf16 two batchings of one prompt drift apart after a
  few tokens. The `hf` part reports agreement in bf16 (exact, and the mean shared prefix) and, with
  --fp32-agree, in fp32, where the paper loop and our backend should agree on (nearly) every case.

Every part appends its figures, one line each (`GPU_CHECK <figure> key=value ...`), to DIR/summary.txt;
details go to stdout (the log).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH = Path(__file__).resolve().parent
ASSETS = BENCH / "gpu_assets"
GIB = 1024**3


def summary(work: Path, figure: str, **fields) -> str:
    """One figure line, printed and appended to WORK/summary.txt."""

    def fmt(v):
        if isinstance(v, float):
            v = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        v = str(v)
        return f'"{v}"' if any(c.isspace() for c in v) else v

    line = " ".join([f"GPU_CHECK {figure}"] + [f"{k}={fmt(v)}" for k, v in fields.items()])
    with open(work / "summary.txt", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    print(line, flush=True)
    return line


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_gpu_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / GIB if torch.cuda.is_available() else None


# ------------------------------------------------------------------------------------------------ env
def part_env(args) -> None:
    from importlib import metadata

    import torch

    vers = {}
    for dist in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "tokenizers", "vllm"):
        try:
            vers[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            vers[dist] = "missing"
    fields = {"python": sys.version.split()[0], **vers, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        fields.update(
            device=p.name,
            gpus=torch.cuda.device_count(),
            mem_gib=round(p.total_memory / GIB, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
    # what the other parts import: a failure here names the missing piece once
    broken = []
    for mod in ("ecliptica_bench.run", "ecliptica_bench.backends.hf", "peft", "trl", "datasets"):
        try:
            importlib.import_module(mod)
        except Exception as exc:  # ImportError, or a version clash raised at import
            broken.append(f"{mod}:{type(exc).__name__}")
            print(f"import {mod} failed: {type(exc).__name__}: {exc}", flush=True)
    fields["imports"] = "ok" if not broken else ",".join(broken)
    summary(args.work, "env", **fields)
    if broken:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- model
def model_dir(work: Path, name: str) -> Path:
    return work / "models" / name


def part_model(args) -> None:
    cfg_file = ASSETS / f"{args.model}.json"
    if not cfg_file.is_file():
        sys.exit(f"{cfg_file}: no such config (models: {', '.join(p.stem for p in sorted(ASSETS.glob('*.json')))})")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    out = model_dir(args.work, args.model)
    if (out / "config.json").exists():
        print(f"{out}: already built", flush=True)
        return
    t0 = time.time()
    spec = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg = AutoConfig.for_model(spec.pop("model_type"), **spec)
    torch.manual_seed(0)
    with torch.device(device()):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id
    )
    params = sum(p.numel() for p in model.parameters())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for f in (ASSETS / "tokenizer").iterdir():
        shutil.copy(f, tmp / f.name)
    tmp.rename(out)
    size = sum(f.stat().st_size for f in out.iterdir())
    summary(
        args.work,
        "model",
        name=args.model,
        params=f"{params / 1e6:.1f}M",
        dtype="bfloat16",
        weights="random",
        size_gib=round(size / GIB, 2),
        build_s=round(time.time() - t0, 1),
    )


# ------------------------------------------------------------------------------------------------- hf
def shared_prefix(a: str, b: str) -> float:
    """Share of the longer text that both texts begin with (1.0 for two equal texts)."""
    n = max(len(a), len(b))
    if n == 0:
        return 1.0
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return k / n


def part_hf(args) -> None:
    """(a) our hf backend vs the paper's loop, same cases, greedy: cases/s ratio and output agreement."""
    path = model_dir(args.work, args.model)
    if not (path / "config.json").exists():
        sys.exit(f"{path}: not built (the model part failed or was skipped)")
    import run_throughput as rt
    import torch

    path, msgs, prompts = rt.cases_and_prompts(str(path), args.cases)
    n, dev = len(prompts), device()
    details = {}
    for dtype in ("bfloat16", "float32") if args.fp32_agree else ("bfloat16",):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        ref, a_s, a_load = rt.paper_loop(path, prompts, args.max_new_tokens, device=dev, dtype=dtype, warmup=True)
        outs, b_s, b_load, bs = rt.ours("hf", path, msgs, prompts, args.max_new_tokens, None, dtype=dtype, warmup=True)
        agree = sum(a == b for a, b in zip(ref, outs))
        prefix = sum(shared_prefix(a, b) for a, b in zip(ref, outs)) / n
        details[dtype] = {
            "paper_loop_s": a_s,
            "backend_s": b_s,
            "load_s": [a_load, b_load],
            "batch_size": bs,
            "agree": agree,
            "prefix": prefix,
            "paper_outputs": ref[:3],
            "backend_outputs": outs[:3],
        }
        print(json.dumps({dtype: details[dtype]}, indent=1), flush=True)
        figure = "hf_vs_paper_loop" if dtype == "bfloat16" else "hf_vs_paper_loop_fp32"
        summary(
            args.work,
            figure,
            model=args.model,
            device=dev,
            dtype=dtype,
            cases=n,
            new_tokens=args.max_new_tokens,
            paper_cases_s=round(n / a_s, 2),
            hf_cases_s=round(n / b_s, 2),
            batch=bs,
            ratio=round(a_s / b_s, 2),
            agree=f"{agree}/{n}",
            prefix=round(prefix, 3),
            peak_gpu_gib=_round(peak_gpu_gib()),
        )
    (args.work / f"hf_{args.model}.json").write_text(json.dumps(details, indent=1), encoding="utf-8")


def _round(x: float | None, nd: int = 2):
    return None if x is None else round(x, nd)


# ---------------------------------------------------------------------------------------------- train
class GPUMemoryPoller:
    """Peak memory in use on GPU 0 while the block runs, read by nvidia-smi every 200 ms (the whole device, so
    it sees the training subprocesses too; None without nvidia-smi)."""

    def __enter__(self):
        import threading

        self.peak_mib = None
        self.proc = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--id=0", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.peak_mib = max(self.peak_mib or 0, int(line.strip()))

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.thread.join(timeout=2)

    @property
    def peak_gib(self):
        return None if self.peak_mib is None else self.peak_mib / 1024


def part_train(args) -> None:
    """(b) CITA and DPO optimizer-step time, measured by bench/train_step.py (the project's training bench: its
    settings, its timer; the new trainer only) on the random-weight model."""
    path = model_dir(args.work, args.model)
    if not (path / "config.json").exists():
        sys.exit(f"{path}: not built (the model part failed or was skipped)")
    out = args.work / f"train_{args.model}.json"
    cmd = [
        sys.executable,
        str(BENCH / "train_step.py"),
        "--model",
        str(path),
        "--methods",
        "cita,dpo",
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--json",
        str(out),
    ]
    if "--baseline-rev" in (BENCH / "train_step.py").read_text(encoding="utf-8"):
        cmd += ["--baseline-rev", "none"]  # no git history travels to the GPU machine
    print(" ".join(cmd), flush=True)
    with GPUMemoryPoller() as mem:
        rc = subprocess.run(cmd).returncode
    if rc != 0:
        sys.exit(f"bench/train_step.py failed (rc={rc})")
    data = json.loads(out.read_text(encoding="utf-8"))
    runs = data.get("runs") or [dict(v, method=k) for k, v in data.items() if isinstance(v, dict) and "seconds_per_step" in v]
    per = {}
    for r in runs:
        if r.get("impl", "new") != "new":
            continue
        per[r["method"]] = r
        tps = r.get("tokens_per_second")
        summary(
            args.work,
            "train_step",
            method=r["method"],
            model=args.model,
            device=device(),
            dtype=r.get("dtype"),
            batch=args.batch_size,
            max_length=args.max_length,
            s_per_step=round(r["seconds_per_step"], 3),
            tokens_s=None if tps is None else round(tps),
            steps=len(r["step_seconds"]),
            loss=_round((r.get("last") or {}).get("loss"), 4),
        )
    if "cita" in per and "dpo" in per:
        ratio = per["cita"]["seconds_per_step"] / per["dpo"]["seconds_per_step"]
        summary(
            args.work,
            "train_cita_over_dpo",
            model=args.model,
            time=round(ratio, 2),
            target="<=1.5",
            meets=ratio <= 1.5,
            peak_gpu_used_gib=_round(mem.peak_gib),
        )
    else:
        sys.exit(f"train_step.py reported {sorted(per)}; expected cita and dpo")


# ----------------------------------------------------------------------------------------------- vllm
def part_vllm(args) -> None:
    """(c) vLLM throughput, where vLLM is installed: our vllm backend vs vLLM's own LLM.generate."""
    if importlib.util.find_spec("vllm") is None:
        summary(
            args.work,
            "vllm",
            status="skipped",
            reason=f"vllm is not importable by {sys.executable}: not installed here, and a GPU machine of this "
            "workplace has no package registry while vLLM's CUDA wheels are far over the 64 MiB a run carries",
        )
        return
    import run_throughput as rt

    path = model_dir(args.work, args.model)
    if not (path / "config.json").exists():
        sys.exit(f"{path}: not built (the model part failed or was skipped)")
    path, msgs, prompts = rt.cases_and_prompts(str(path), args.cases)
    n = len(prompts)
    r = rt.vllm_vs_engine(path, msgs, prompts, args.max_new_tokens)
    fields = dict(
        model=args.model,
        cases=n,
        new_tokens=args.max_new_tokens,
        vllm_backend_cases_s=round(n / r["seconds"], 2),
        engine_cases_s=round(n / r["engine_seconds"], 2),
        backend_over_engine=round(r["engine_seconds"] / r["seconds"], 3),
        target=">=0.95",
        agree_vs_engine=f"{sum(a == b for a, b in zip(r['outputs'], r['engine_outputs']))}/{n}",
        engine_start_s=round(r["load_s"], 1),
    )
    hf = args.work / f"hf_{args.model}.json"
    if hf.exists():  # the paper loop's bf16 figure on the same model and cases, when hf ran first
        d = json.loads(hf.read_text(encoding="utf-8")).get("bfloat16")
        if d:
            fields["ratio_vs_paper_loop"] = round(d["paper_loop_s"] / r["seconds"], 2)
    summary(args.work, "vllm", **fields)


PARTS = {"env": part_env, "model": part_model, "hf": part_hf, "train": part_train, "vllm": part_vllm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=list(PARTS))
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", default="smollm2-135m", help="a config name in bench/gpu_assets")
    ap.add_argument("--cases", type=int, default=192)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--fp32-agree", action="store_true", help="hf: also run both loops in fp32")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    PARTS[args.part](args)


if __name__ == "__main__":
    main()
