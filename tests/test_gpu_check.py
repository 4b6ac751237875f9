"""bench/gpu_check.sh: the prepared GPU readiness check. Its CPU-safe parts run here with tiny sizes
(--cpu-smoke, slow); a part that fails still leaves the other parts' figures and the log (fast)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SCRIPT = REPO / "bench" / "gpu_check.sh"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_script(tmp_path, *args, **env):
    full = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DIR": str(tmp_path / "work"), "OUT": str(tmp_path / "out"), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=full, capture_output=True, text=True, timeout=1200)


def summary_lines(stdout: str) -> list[str]:
    """The GPU_CHECK lines after the summary header, i.e. what the script prints at the end."""
    tail = stdout.split("==== GPU_CHECK summary", 1)[1]
    return [line for line in tail.splitlines() if line.startswith("GPU_CHECK ")]


def fields(line: str) -> dict:
    return dict(tok.split("=", 1) for tok in line.split()[2:] if "=" in tok)


def test_shared_prefix_by_hand():
    gc = _gpu_check()
    assert gc.shared_prefix("abcd", "abcd") == 1.0
    assert gc.shared_prefix("", "") == 1.0
    assert gc.shared_prefix("abXd", "abcd") == 2 / 4
    assert gc.shared_prefix("ab", "abcdef") == 2 / 6  # the share of the longer text
    assert gc.shared_prefix("x", "") == 0.0


def test_summary_line_format(tmp_path):
    gc = _gpu_check()
    line = gc.summary(tmp_path, "demo", ratio=3.14159, agree="7/8", big=12345.6, none=None, why="two words")
    assert line == 'GPU_CHECK demo ratio=3.14 agree=7/8 big=12346 none=None why="two words"'
    assert (tmp_path / "summary.txt").read_text() == line + "\n"


def test_a_failing_part_leaves_the_others_and_the_log(tmp_path):
    """An unknown model: its build and its hf part fail, training has no model; each says so in one line,
    the script goes on to the end, prints the summary, writes $OUT/gpu_check.log and exits 1."""
    p = run_script(tmp_path, "--cpu-smoke", GPU_CHECK_MODELS="nope", GPU_CHECK_PARTS="model,hf,train")
    assert p.returncode == 1, p.stdout + p.stderr
    lines = summary_lines(p.stdout)
    assert lines == [
        "GPU_CHECK model_nope FAILED rc=1 (see the log above this line)",
        "GPU_CHECK hf_nope FAILED rc=1 (see the log above this line)",
        "GPU_CHECK train FAILED reason=no_model_built",
    ]
    assert "nope.json: no such config" in p.stdout
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert summary_lines(log) == lines


def test_out_of_budget_parts_are_skipped_not_run(tmp_path):
    p = run_script(tmp_path, "--cpu-smoke", GPU_CHECK_MODELS="nope", GPU_CHECK_PARTS="model,hf", GPU_CHECK_BUDGET_S="0")
    assert p.returncode == 1
    assert summary_lines(p.stdout) == [
        "GPU_CHECK model_nope SKIPPED reason=out_of_time budget_s=0",
        "GPU_CHECK hf_nope SKIPPED reason=out_of_time budget_s=0",
    ]


def test_unknown_argument_is_refused(tmp_path):
    p = run_script(tmp_path, "--gpu")
    assert p.returncode == 2 and "usage: bash bench/gpu_check.sh [--cpu-smoke]" in p.stderr


@pytest.mark.slow
def test_cpu_smoke_runs_every_part(tmp_path):
    """The whole script at tiny sizes on CPU: a random-weight tiny model built from bench/gpu_assets, the hf
    backend vs the paper loop (bf16 and fp32), CITA/DPO steps, and the vllm part's verdict."""
    p = run_script(tmp_path, "--cpu-smoke")
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    lines = summary_lines(p.stdout)
    by = {}
    for line in lines:
        name = line.split()[1]
        by.setdefault(name, []).append(fields(line))
    assert by["env"][0]["imports"] == "ok" and by["env"][0]["cuda"] == "False"
    assert by["model"][0]["name"] == "tiny" and by["model"][0]["weights"] == "random"
    bf16, fp32 = by["hf_vs_paper_loop"][0], by["hf_vs_paper_loop_fp32"][0]
    assert bf16["dtype"] == "bfloat16" and bf16["cases"] == "8" and bf16["batch"] == "32"
    # fp32: our backend's greedy output is the paper loop's, case by case
    assert fp32["agree"] == "8/8" and fp32["prefix"] == "1"
    for f in (bf16, fp32):
        assert float(f["ratio"]) > 0 and float(f["paper_cases_s"]) > 0
    assert sorted(f["method"] for f in by["train_step"]) == ["cita", "dpo"]
    assert all(float(f["s_per_step"]) > 0 for f in by["train_step"])
    assert float(by["train_cita_over_dpo"][0]["time"]) > 0
    vllm = by["vllm"][0]
    if importlib.util.find_spec("vllm") is None:
        assert vllm["status"] == "skipped"
    # the random model's outputs differ between cases (an all-equal output would make agreement meaningless)
    import json

    details = json.loads((tmp_path / "work" / "hf_tiny.json").read_text())
    assert len(set(details["float32"]["paper_outputs"])) > 1
    assert summary_lines((tmp_path / "out" / "gpu_check.log").read_text()) == lines


# ------------------------------------------------------------- run_throughput's vLLM harness-overhead figure
class _Tok:
    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False  # the chat template already wrote them
        return {"input_ids": [[len(t), 7] for t in texts]}


class _LLM:
    def __init__(self):
        self.calls = []

    def generate(self, prompts, params, use_tqdm=False, **kw):
        self.calls.append((list(prompts), params))
        out = []
        for p in prompts:
            text = f"out{p['prompt_token_ids'][0]}"
            out.append(type("O", (), {"outputs": [type("C", (), {"text": text, "token_ids": [1, 2]})()]})())
        return out


class _VLLMBackend:
    default_batch_size = 2
    _defaults = {"repetition_penalty": 1.1}

    def __init__(self):
        self.tokenizer = _Tok()
        self.llm = _LLM()
        self.batches = []

    def _load(self):
        return self.llm

    def plan_batches(self, reqs, n):
        return [reqs[i : i + n] for i in range(0, len(reqs), n)]

    def generate(self, batch, params):
        from ecliptica_bench.backends import GenResult

        self.batches.append([r.key for r in batch])
        return [
            GenResult(text=f"out{len(r.prompt)}", finish_reason="stop", prompt_tokens=1, completion_tokens=2, latency_s=0.0)
            for r in batch
        ]

    def close(self):
        pass


def test_vllm_vs_engine_times_both_on_one_engine(monkeypatch):
    """bench/run_throughput.py (d): the backend in its own batches, then vLLM's LLM.generate once over all the
    prompts with the backend's greedy params before and after the backend (engine_seconds is their mean), after one
    max_tokens=1 pass that warms the prefix cache."""
    import types

    import ecliptica_bench.backends as backends

    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: dict(kw)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    be = _VLLMBackend()
    monkeypatch.setattr(backends, "get_backend", lambda name, **kw: be)
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import run_throughput as rt
    finally:
        sys.path.remove(str(REPO / "bench"))
    prompts = ["a", "bbb", "cc", "dddd", "e"]
    r = rt.vllm_vs_engine("m", [[] for _ in prompts], prompts, max_new_tokens=9)
    assert r["outputs"] == r["engine_outputs"] == ["out1", "out3", "out2", "out4", "out1"]
    assert len(be.batches) == 3  # the backend's own batches of 2
    # a warm-up pass, then the engine timed before and after the backend (one call each, every prompt)
    (warm, warm_params), (before, before_params), (after, after_params) = be.llm.calls
    assert warm_params == {"temperature": 0.0, "max_tokens": 1} and len(warm) == 5
    assert len(before) == len(after) == 5
    greedy = {"repetition_penalty": 1.1, "max_tokens": 9, "temperature": 0.0, "skip_special_tokens": True}
    assert before_params == after_params == greedy
    assert r["seconds"] >= 0 and r["batch_size"] == 2
    assert r["engine_seconds"] == sum(r["engine_seconds_each"]) / 2
