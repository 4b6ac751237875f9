"""transformers backend: batched `generate` with left padding, requests bucketed by prompt length.

Sorting by length keeps padding (wasted compute) small; greedy decoding when temperature is 0.
Sampling is per row: each request carries its own seed and its row draws from its own torch.Generator
(RowSampler, a logits processor that applies temperature and top-p and picks the token), so a case's
sample depends only on the model, its rendered prompt, the sampling params and its seed; never on
which other cases share its batch, the batch size, or whether the run was resumed after a crash.
`model_args` (--model-args k=v,...) go to `from_pretrained(...)` as they are (attn_implementation, revision,
device_map, ...); the dtype is --dtype's.
"""

from __future__ import annotations

import logging
import time

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


class HFBackend(Backend):
    name = "hf"
    default_batch_size = 32

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        dtype: str = "auto",
        device: str | None = None,
        model_args: dict | None = None,
    ):
        self.model_args = check_model_args(model_args or {}, {"dtype": "--dtype", "torch_dtype": "--dtype"}, "--backend hf")
        self.model_dir = local_model_dir(model)
        self.adapter_dir = check_adapter(adapter)
        self.fingerprint = model_fingerprint(self.model_dir, self.adapter_dir)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.dtype = check_dtype(dtype)
        # auto = the dtype the weights were saved in (config.json), float32 when it says nothing
        self.resolved_dtype = config_dtype(self.model_dir) if self.dtype == "auto" else self.dtype
        self.device = device
        self._model = None

    # -- loading -------------------------------------------------------------------------------
    def _load(self):
        if self._model is not None:
            return self._model
        import torch
        from transformers import AutoModelForCausalLM

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, self.resolved_dtype)
        t0 = time.time()
        try:
            model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=dtype, **self.model_args)
        except Exception as exc:
            raise EclipticaError(f"{self.model_dir}: cannot load the model: {type(exc).__name__}: {exc}") from exc
        if self.adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(self.adapter_dir)).merge_and_unload()
        if "device_map" in self.model_args:  # placed by accelerate: inputs go where its first layer is
            device = str(model.device)
        else:
            model.to(device)
        model.eval()
        self.device = device
        self._model = model
        gc = model.generation_config
        eos = gc.eos_token_id if gc.eos_token_id is not None else self.tokenizer.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        if not eos:
            raise EclipticaError(f"{self.model_dir}: no eos token in the tokenizer or generation config")
        self.eos_ids = eos
        log.info("hf: loaded %s (%s, %s) in %.1fs", self.model_dir, model.dtype, device, time.time() - t0)
        return model

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "dtype": self.dtype,
            "resolved_dtype": self.resolved_dtype,
            "device": self.device or "auto",
            "model_args": dict(self.model_args),
        }

    # -- batching ------------------------------------------------------------------------------
    def plan_batches(self, requests: list[GenRequest], batch_size: int) -> list[list[GenRequest]]:
        """Longest prompts first (memory peaks early), equal lengths together (little padding)."""
        lengths = self.tokenizer([r.prompt for r in requests], add_special_tokens=False)["input_ids"]
        order = sorted(range(len(requests)), key=lambda i: (-len(lengths[i]), requests[i].key))
        ordered = [requests[i] for i in order]
        return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest], params: SamplingParams) -> list[GenResult]:
        if not requests:
            return []
        import torch

        model = self._load()
        tok = self.tokenizer
        t0 = time.time()
        # the chat template already wrote the special tokens: add none
        enc = tok([r.prompt for r in requests], add_special_tokens=False, padding=True, return_tensors="pt").to(self.device)
        kwargs = dict(max_new_tokens=params.max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=self.eos_ids)
        # HF's own sampling draws from one global generator for the whole batch; ours draws per row, so
        # generate runs "greedy" over the one-hot scores RowSampler leaves (its pick is the argmax).
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if not params.greedy:
            from transformers import LogitsProcessorList

            seeds = [r.seed if r.seed is not None else params.seed for r in requests]
            kwargs["logits_processor"] = LogitsProcessorList([RowSampler(seeds, params.temperature, params.top_p, self.device)])
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        wall = time.time() - t0
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        eos = set(self.eos_ids)
        results = []
        for row, plen in zip(new, prompt_lens):
            stop_at = next((i for i, t in enumerate(row) if t in eos), None)
            if stop_at is None:
                # no eos: ran out of budget (trailing pads only appear after an eos)
                toks, finish, n = row, "length", len(row)
            else:
                toks, finish, n = row[:stop_at], "stop", stop_at + 1
            results.append(
                GenResult(
                    text=tok.decode(toks, skip_special_tokens=True),
                    finish_reason=finish,
                    prompt_tokens=int(plen),
                    completion_tokens=n,
                    latency_s=wall,
                )
            )
        return results

    def close(self) -> None:
        self._model = None


class RowSampler:
    """A logits processor that samples each row with its own generator (temperature, then top-p, as vLLM
    does) and returns scores that are 0 at the drawn token and -inf elsewhere, so generate's argmax
    takes exactly that token. One uniform draw per row per step keeps row i's sequence of draws a
    function of its seed alone."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device):
        import torch

        self.temperature, self.top_p = float(temperature), float(top_p)
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        sorted_p = sorted_p.masked_fill((cum - sorted_p) >= self.top_p, 0.0)
        cum = sorted_p.cumsum(dim=-1)
        picks = []
        for i, g in enumerate(self.generators):
            u = torch.rand(1, generator=g, device=scores.device, dtype=cum.dtype) * cum[i, -1]
            j = int(torch.searchsorted(cum[i], u).clamp(max=cum.shape[-1] - 1))
            picks.append(order[i, j])
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(picks), device=scores.device), torch.stack(picks)] = 0.0
        return out
