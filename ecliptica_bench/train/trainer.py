"""`ecliptica train`: CITA, DPO and SFT with LoRA, on trl (docs/training.md).

    cita  trl's DPO loss + lambda_KL(step) x token-level KL(pi || pi_ref) over the full vocabulary on the
          completion tokens (+ optional lambda_SFT x NLL on chosen)
    dpo   the same trainer without the KL term (+ optional SFT term); the KL to the reference is still
          measured (no gradient) and logged, so DPO's and CITA's drift can be compared
    sft   trl's SFTTrainer on the chosen completions

One reference forward per batch serves both the DPO reference log-probs and the KL. trl 1.16's DPOTrainer
runs the policy and then, for a PEFT model, the reference (the same model with the adapter disabled), each
through a "fused LM head" it patches onto the model. `PreferenceTrainer` replaces that head (`FusedHead`) and
reorders the two passes: it first runs trl's own `compute_ref_log_probs` (one reference forward; the head
keeps the reference log-softmax on the completion tokens), then hands those log-probs to trl's
`_compute_loss` as precomputed reference log-probs, whose policy forward then gets, from one projection of
each completion token, the log-probs trl needs and the KL against the kept reference (losses.completion_head).
The DPO term, its metrics and the adapter handling stay trl's.

Speed (a CPU is the demo's trainer): the head projects completion positions only (trl's CPU path scores
every position), and the backbone runs on a padding-free layout in which the chosen and rejected rows of a
pair share their prompt (packing.py; same outputs to float rounding). `--dtype auto` uses bf16 autocast where
the hardware has native bf16 matmuls (CUDA with bf16, CPUs with AVX512-BF16 or AMX) and fp32 elsewhere:
without native support bf16 matmuls are emulated and far slower than fp32. The reference is frozen, so its
completion hidden states are kept per sequence (RefCache, --ref-cache-mb): a second epoch, or a second run on
the same data in the same process (the demo's DPO then CITA), projects the kept states instead of running the
reference backbone; the loss is exactly the same (RefCache's docstring says why hidden states and not a
top-k of the log-probs). The held-out evaluation computes the base model's log-probs once per process and uses
them as every adapter's reference log-probs.

Layout of OUT:
    train_config.json   every setting, the resolved model and dtype, the data manifest sha, library versions
    train_log.csv       one row per optimizer step, appended as steps complete (kl: mean token-level
                        KL(pi || pi_ref) over the batch's completion tokens, for dpo too; kl_weight 0 = not optimised)
    checkpoints/        HF Trainer checkpoints every --save-steps (for --resume)
    adapter/            the LoRA adapter + tokenizer (`ecliptica run --adapter OUT` or OUT/adapter)
    merged/             with --merge: the adapter merged into a full model + tokenizer (chat template included)
    summary.json        method, steps, seconds and tokens per step, peak memory, dtype, KL to the reference
                        (final, mean), held-out preference accuracy before/after (overall and per kind), config
    pref_eval.json      with --eval-heldout: the full held-out preference reports before and after training

Batch size: --batch-size is the per-device batch (preference pairs per forward pass on each process), so
one optimizer step sees batch_size x processes x grad_accum pairs. Several processes (`accelerate launch`,
`torchrun`; dist.py) each take a different slice of the shuffled data: with P processes, step k's
micro-batches are the same pairs that one process with --grad-accum P would see, and DDP averages the
gradients as accumulation does (each micro-batch loss divided by grad_accum), so both runs take the same
steps (tests/test_train_distributed.py). Only the main process writes OUT; the logged loss and terms
(dpo, kl, sft, rewards) are means over all processes' micro-batches.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import resource
import shutil
import sys
import time
import types
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..data.io import read_json, sha256_file, staged_dir, write_json
from ..errors import EclipticaError
from ..likelihood import pair_logps, tokenize_pair
from . import dist
from .losses import KLSchedule, completion_head
from .packing import plan_packing
from .prefs import MANIFEST as PREFS_MANIFEST
from .prefs import load_prefs

log = logging.getLogger(__name__)

METHODS = ("cita", "dpo", "sft")
PROMPT_FORMATS = ("chat", "block")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_KL_WEIGHT = 2e-4
DTYPES = ("auto", "float32", "bfloat16")
LOG_COLUMNS = [
    "step",
    "epoch",
    "loss",
    "dpo",
    "kl",
    "sft",
    "reward_margin",
    "reward_accuracy",
    "kl_weight",
    "learning_rate",
    "grad_norm",
    "tokens_seen",
    "seconds",
]
CONFIG = "train_config.json"


@dataclass
class TrainConfig:
    method: str
    model: str
    data: str
    out: str
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    beta: float = 0.1
    kl_weight: float | None = None  # None: DEFAULT_KL_WEIGHT for cita, 0 for dpo
    kl_anneal: str | None = None  # "START:END": linear over the run's steps, replaces kl_weight
    sft_weight: float = 0.0
    lr: float = 5e-6
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 3407
    merge: bool = False
    prompt_format: str = "chat"
    save_steps: int = 0
    resume: bool = False
    gradient_checkpointing: bool = False
    eval_heldout: bool = False
    dtype: str = "auto"  # auto: bf16 autocast where the hardware has native bf16, else fp32
    pack: bool = True  # padding-free, prompt-sharing batches (packing.py)
    ref_cache_mb: int = 512  # keep the reference's completion hidden states for later epochs/runs (RefCache); 0 = off
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        """Every setting problem as one clear line (the CLI exits 2)."""
        if self.method not in METHODS:
            raise EclipticaError(f"--method {self.method!r}: choose from {', '.join(METHODS)}")
        if self.dtype not in DTYPES:
            raise EclipticaError(f"--dtype {self.dtype!r}: choose from {', '.join(DTYPES)}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise EclipticaError(f"--prompt-format {self.prompt_format!r}: choose from {', '.join(PROMPT_FORMATS)}")
        if self.method == "cita":
            if self.kl_anneal:
                sched = KLSchedule.parse(0.0, self.kl_anneal)
                if not sched.active:
                    raise EclipticaError(
                        "--kl-anneal 0:0 with --method cita: CITA needs a KL anchor to the reference "
                        "(a weight > 0); use --method dpo to train without it"
                    )
            elif self.kl_weight is not None and self.kl_weight <= 0:
                raise EclipticaError(
                    f"--kl-weight {self.kl_weight:g} with --method cita: CITA's KL anchor to the "
                    "reference is mandatory (e.g. 2e-4); use --method dpo to train without it"
                )
        elif self.kl_anneal or (self.kl_weight or 0) > 0:
            raise EclipticaError(f"--kl-weight/--kl-anneal apply to --method cita only (got --method {self.method})")
        if self.method == "sft" and self.sft_weight:
            raise EclipticaError("--sft-weight adds an SFT term to cita/dpo; --method sft is SFT already")
        for name in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "max_length"):
            if getattr(self, name) < 1:
                raise EclipticaError(f"--{name.replace('_', '-')} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise EclipticaError("--max-steps must be >= 1")
        if self.epochs <= 0:
            raise EclipticaError("--epochs must be > 0")
        if self.lr <= 0 or self.beta <= 0 or self.sft_weight < 0:
            raise EclipticaError("--lr and --beta must be > 0, --sft-weight >= 0")

    @property
    def kl_schedule(self) -> KLSchedule:
        if self.method != "cita":
            return KLSchedule(0.0, 0.0)
        return KLSchedule.parse(DEFAULT_KL_WEIGHT if self.kl_weight is None else self.kl_weight, self.kl_anneal)


# ---------------------------------------------------------------------------------------------- data


def prompt_messages(row: dict, prompt_format: str = "chat") -> list[dict]:
    """The conversation a preference row is trained on.

    chat: system = instruction, user = prompt, exactly as the benchmark sends it (chat.messages_for).
    block: the paper's single user turn "### Alignment Instruction: ... ### User Prompt: ...".
    """
    from ..chat import messages_for

    if prompt_format == "block":
        return [
            {"role": "user", "content": f"### Alignment Instruction:\n{row['instruction']}\n\n### User Prompt:\n{row['prompt']}"}
        ]
    return messages_for({"instruction": row["instruction"], "prompt": row["prompt"]})


def trl_dataset(rows: list[dict], method: str, prompt_format: str = "chat"):
    """Preference rows -> trl's conversational format (prompt/chosen/rejected, or prompt/completion for SFT)."""
    import datasets

    def asst(text: str) -> list[dict]:
        return [{"role": "assistant", "content": text}]

    if method == "sft":
        recs = [{"prompt": prompt_messages(r, prompt_format), "completion": asst(r["chosen"])} for r in rows]
    else:
        recs = [
            {"prompt": prompt_messages(r, prompt_format), "chosen": asst(r["chosen"]), "rejected": asst(r["rejected"])}
            for r in rows
        ]
    return datasets.Dataset.from_list(recs)


# ---------------------------------------------------------------------------------------------- the trainer


def resolve_dtype(requested: str = "auto") -> str:
    """float32 or bfloat16 (autocast). auto: bf16 on CUDA with bf16 support and on CPUs with native bf16
    matmuls (AVX512-BF16 or AMX); fp32 elsewhere, where oneDNN would emulate bf16 far slower than fp32."""
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def cpu_has_native_bf16() -> bool:
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(f()) for f in probes if f is not None)
    except Exception:  # a torch without the probes: do not guess
        return False


class RefCache:
    """The reference model's final hidden states at the scored (completion) positions, per sequence.

    The reference (the base model, adapter disabled) is frozen, so its hidden states depend on a sequence's
    tokens only: the first time a sequence is seen its reference pass runs as before and its completion
    hidden states are kept; a batch whose sequences are all kept skips the reference backbone (the most of a
    reference pass) and projects the kept states through the LM head instead. So a second epoch, and a
    second run on the same data in the same process (the demo trains DPO, then CITA), run no reference
    backbone at all.

    What is kept, and why not the log-probs: the DPO term needs log pi_ref(y) of the completion tokens (one
    number per token), but CITA's anchor is the full-vocabulary KL(pi || pi_ref), which needs the whole
    reference distribution at every completion position: V = 49,152 floats per token for SmolLM2, about
    10 GB for the demo's data. A top-k or sampled-token shortcut would change the loss (and the sampled-token
    log-ratio is not a KL: it can be negative). The final hidden state (576 floats) determines that
    distribution exactly through the frozen, bias-free LM head (FusedHead refuses heads with a bias or
    scaling), so keeping it keeps the loss exactly the same at 1/85 of the memory; the projection it costs
    is the same one the live reference pass does.

    The values are the ones the live pass computes (the same model, dtype and tokens); only the packed
    layout a sequence was first computed in may differ, which changes float rounding only (packing.py).
    Rows are keyed by their real tokens and their label mask, so a different truncation or prompt format is
    a different row. `max_bytes` bounds the memory; beyond it new rows are not kept (they run live).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.rows: dict[bytes, object] = {}
        self.bytes = 0
        self.hits = 0  # batches served from the cache
        self.misses = 0  # batches whose reference backbone ran

    @staticmethod
    def keys(input_ids, attention_mask, labels) -> list[bytes] | None:
        """One key per row (its real tokens and labels); None when a row is not right-padded, whose hidden
        states would depend on the padding (the caller then runs the batch live)."""
        import numpy as np

        ids, lab = input_ids.cpu().numpy(), labels.cpu().numpy()
        if attention_mask is None:
            lengths = [ids.shape[1]] * ids.shape[0]
        else:
            am = attention_mask.cpu().numpy().astype(bool)
            lengths = am.sum(1).tolist()
            if not all(am[b, :n].all() for b, n in enumerate(lengths)):
                return None
        return [
            np.int64(n).tobytes() + ids[b, :n].astype(np.int64).tobytes() + lab[b, :n].astype(np.int64).tobytes()
            for b, n in enumerate(lengths)
        ]

    def get(self, keys: list[bytes]):
        """The batch's reference hidden states in FusedHead's order (row by row), or None unless every row is kept."""
        import torch

        if not all(k in self.rows for k in keys):
            self.misses += 1
            return None
        self.hits += 1
        return torch.cat([self.rows[k] for k in keys])

    def put(self, keys: list[bytes], h, counts: list[int]) -> None:
        for k, part in zip(keys, h.detach().split(counts)):
            size = part.numel() * part.element_size()
            if k not in self.rows and self.bytes + size <= self.max_bytes:
                self.rows[k] = part.clone()
                self.bytes += size


_REF_CACHES: dict[tuple, RefCache] = {}  # per process: one per (base model files, dtype, attention)


def _model_files_key(model_path: str) -> tuple:
    """A model folder's path and its files' names, sizes and times: a model rewritten on disk is another key."""
    p = Path(model_path)
    if not p.is_dir():
        return (model_path,)
    files = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file()))
    return (str(p.resolve()), files)


def ref_cache_for(model_path: str, dtype: str, attention: str | None, max_mb: int) -> RefCache | None:
    """The process's reference cache for this base model (its files' names, sizes and times are part of the
    key, so a model rewritten on disk gets a fresh cache); None with max_mb 0."""
    if max_mb <= 0:
        return None
    key = (_model_files_key(model_path), dtype, attention)
    cache = _REF_CACHES.get(key)
    if cache is None or cache.max_bytes != max_mb << 20:
        cache = _REF_CACHES[key] = RefCache(max_mb << 20)
    return cache


class FusedHead:
    """Replaces trl's fused LM head on `model` (the causal LM under the PEFT wrapper).

    Called as `model(..., labels=labels, fused_lm_head=True)` (how trl calls it), it runs the backbone on the
    packed layout of the batch (packing.py; the plan is made once per batch and reused by both passes),
    projects the completion positions only (losses.completion_head) and returns trl's FusedCausalLMOutput.
    `mode` says which pass this is: "ref" keeps the reference log-softmax of the completion tokens, "policy"
    scores the KL against it and leaves the per-token results in `last` for the trainer. Any other call
    goes to the model's own forward (generation, merging)."""

    def __init__(self, model, pack: bool = True, chunk_tokens: int = 256, ref_cache: RefCache | None = None):
        from trl.trainer.utils import FusedCausalLMOutput

        cfg = model.config.get_text_config()
        head = model.get_output_embeddings()
        unsupported = [
            name
            for name in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier", "lm_head_multiplier")
            if getattr(cfg, name, None) not in (None, 1, 1.0)
        ]
        if getattr(head, "bias", None) is not None:
            unsupported.append("an LM head bias")
        if getattr(cfg, "output_router_logits", False):
            unsupported.append("MoE router losses")
        if unsupported:
            raise EclipticaError(
                f"{getattr(cfg, '_name_or_path', 'model')}: ecliptica's preference trainer does not "
                f"support {', '.join(unsupported)}"
            )
        self.model = model
        self.output_cls = FusedCausalLMOutput
        impl = getattr(model.config, "_attn_implementation", None)
        self.attn = impl if pack and impl in ("sdpa", "eager") else None
        self.chunk_tokens = chunk_tokens
        self.ref_cache = ref_cache
        self.mode: str | None = None
        self.ref_logq = None
        self.last: dict | None = None
        self.tokens = {"padded": 0, "packed": 0, "real": 0}  # over policy passes: what packing saved
        self._plan_for = (None, None)
        original = types.MethodType(type(model).forward, model)

        @functools.wraps(type(model).forward)
        def forward(_self, *args, fused_lm_head=False, labels=None, **kwargs):
            if not fused_lm_head:
                if labels is not None:
                    kwargs["labels"] = labels
                return original(*args, **kwargs)
            return self(*args, labels=labels, **kwargs)

        model.forward = types.MethodType(forward, model)

    def begin(self, mode: str) -> None:
        self.mode = mode
        if mode == "ref":
            self.ref_logq, self.last = None, None

    def end(self) -> dict | None:
        last, self.mode, self.ref_logq, self._plan_for = self.last, None, None, (None, None)
        self.last = None
        return last

    def _plan(self, input_ids, attention_mask):
        if self.attn is None:
            return None
        key, plan = self._plan_for
        if key is not input_ids:
            plan = plan_packing(input_ids, attention_mask, paired=input_ids.shape[0] % 2 == 0)
            self._plan_for = (input_ids, plan)
        return plan

    def __call__(self, input_ids=None, attention_mask=None, labels=None, use_cache=None, **kwargs):
        import torch

        for unsupported in ("shift_labels", "inputs_embeds", "past_key_values"):
            if kwargs.get(unsupported) is not None:
                raise RuntimeError(f"FusedHead: {unsupported} is not supported")
        kwargs.pop("num_items_in_batch", None)
        B, T = input_ids.shape
        lab = labels[:, 1:]
        sel = lab != -100
        keys = h = None
        # peft passes output_attentions=None & co.; any set model argument could change the states: run live
        if self.mode == "ref" and self.ref_cache is not None and all(v is None for v in kwargs.values()):
            keys = self.ref_cache.keys(input_ids, attention_mask, labels)
            h = self.ref_cache.get(keys) if keys is not None else None
        plan = self._plan(input_ids, attention_mask)
        if h is None:
            backbone = self.model.base_model
            if plan is not None:
                mask = plan.attention_mask(self.attn).to(input_ids.device)
                hidden = backbone(
                    input_ids=plan.input_ids, attention_mask=mask, position_ids=plan.position_ids, use_cache=False, **kwargs
                ).last_hidden_state
                index = plan.index
            else:
                hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs).last_hidden_state
                index = torch.arange(B * T, device=input_ids.device).view(B, T)
            h = hidden.reshape(-1, hidden.shape[-1])[index[:, :-1][sel]]
            if keys is not None:
                self.ref_cache.put(keys, h, sel.sum(1).tolist())
        out = completion_head(
            h,
            self.model.get_output_embeddings().weight,
            lab[sel],
            ref_logq=self.ref_logq if self.mode == "policy" else None,
            chunk_tokens=self.chunk_tokens,
            keep_logq=self.mode == "ref",
        )

        def grid(x):
            return torch.zeros(sel.shape, dtype=x.dtype, device=x.device).masked_scatter(sel, x)

        log_probs = grid(out.logps)
        if self.mode == "ref":
            self.ref_logq = out.logq
        elif self.mode == "policy":
            self.last = {"sel": sel, "log_probs": log_probs, "kl": out.kl}
            real = int(attention_mask.sum()) if attention_mask is not None else B * T
            self.tokens["padded"] += B * T
            self.tokens["packed"] += plan.packed_tokens if plan is not None else B * T
            self.tokens["real"] += real
        n = int(sel.sum())
        return self.output_cls(
            loss=-out.logps.sum() / max(n, 1),
            log_probs=log_probs,
            entropy=grid(out.entropy),
            mean_logits=grid(out.mean_logit),
            is_top1=grid(out.is_top1),
            label_mask=sel,
        )


def _preference_trainer_cls():
    from trl import DPOTrainer

    class PreferenceTrainer(DPOTrainer):
        """trl's DPOTrainer plus CITA's KL anchor and an optional SFT term (see the module docstring)."""

        def __init__(
            self,
            *args,
            kl_schedule: KLSchedule = KLSchedule(0.0, 0.0),
            sft_weight: float = 0.0,
            kl_chunk_tokens: int = 256,
            pack: bool = True,
            ref_cache: RefCache | None = None,
            **kwargs,
        ):
            self.kl_schedule = kl_schedule
            self.sft_weight = float(sft_weight)
            super().__init__(*args, **kwargs)
            if self.precompute_ref_logps:
                raise EclipticaError(
                    "the per-step reference forward gives the KL term (and its logging for dpo); "
                    "precompute_ref_log_probs must be off"
                )
            if self.ref_model is not None:
                raise EclipticaError(
                    "PreferenceTrainer trains a LoRA adapter: the reference is the base model with "
                    "the adapter disabled (pass a peft_config)"
                )
            self.head = FusedHead(
                self.accelerator.unwrap_model(self.model).get_base_model(),
                pack=pack,
                chunk_tokens=kl_chunk_tokens,
                # a "ref" adapter (re-training an adapter) is a reference that is not the base model: not cached
                ref_cache=None if "ref" in getattr(self.model, "peft_config", {}) else ref_cache,
            )

        def current_kl_weight(self) -> float:
            return self.kl_schedule.at(self.state.global_step, max(self.state.max_steps, 1))

        def _compute_loss(self, model, inputs, return_outputs):
            import torch

            mode = "train" if self.model.training else "eval"
            want_kl, want_sft = self.kl_schedule.active, self.sft_weight > 0
            try:
                self.head.begin("ref")
                ref_chosen, ref_rejected = self.compute_ref_log_probs(model, inputs)  # the one reference forward
                self.head.begin("policy")
                self.precompute_ref_logps = True  # trl takes the reference log-probs from the batch
                result = super()._compute_loss(
                    model, {**inputs, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}, return_outputs
                )
            finally:
                self.precompute_ref_logps = False
                last = self.head.end()
            if last is None or last["kl"] is None:
                raise RuntimeError("the reference and policy passes did not both go through FusedHead")
            dpo, outputs = result if return_outputs else (result, None)
            kl_tok = last["kl"]
            kl = kl_tok.sum() / kl_tok.numel() if kl_tok.numel() else kl_tok.sum()
            total = dpo
            kl_w = self.current_kl_weight() if want_kl else 0.0
            if want_kl:
                total = total + kl_w * kl
            sft = None
            if want_sft:
                half = last["sel"].shape[0] // 2  # batch = [chosen; rejected]
                chosen = last["log_probs"][:half][last["sel"][:half]]
                sft = -chosen.mean() if chosen.numel() else chosen.sum()
                total = total + self.sft_weight * sft
            # means over the processes (a collective: every process computes the loss of each micro-batch)
            terms = torch.stack(
                [
                    dpo.detach().float(),
                    kl.detach().float(),
                    sft.detach().float() if sft is not None else dpo.new_tensor(float("nan")).float(),
                ]
            )
            terms = self.accelerator.gather(terms.reshape(1, 3)).mean(0).tolist()
            m = self._metrics[mode]
            m["dpo"].append(terms[0])
            m["kl"].append(terms[1])
            m["sft"].append(terms[2])
            m["kl_weight"].append(kl_w)
            return (total, outputs) if return_outputs else total

    return PreferenceTrainer


def _csv_callback_cls():
    from transformers import TrainerCallback

    class CSVLogCallback(TrainerCallback):
        """One CSV row per logged step, flushed as it happens (logging_steps=1: every optimizer step).
        Every process keeps the rows; only the main one writes the file."""

        KEYS = {
            "loss": "loss",
            "dpo": "dpo",
            "kl": "kl",
            "sft": "sft",
            "rewards/margins": "reward_margin",
            "rewards/accuracies": "reward_accuracy",
            "kl_weight": "kl_weight",
            "learning_rate": "learning_rate",
            "grad_norm": "grad_norm",
            "num_tokens": "tokens_seen",
            "epoch": "epoch",
        }

        def __init__(self, path: Path, method: str):
            self.path = path
            self.method = method
            self.t0 = time.perf_counter()
            self.rows: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            row = {"step": state.global_step, "seconds": round(time.perf_counter() - self.t0, 3)}
            for key, col in self.KEYS.items():
                v = logs.get(key)
                row[col] = "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
            if row["tokens_seen"] != "":
                row["tokens_seen"] = int(row["tokens_seen"])
            if self.method == "sft":
                row["sft"] = logs["loss"]
            self.rows.append(row)
            if not state.is_world_process_zero:
                return
            new = not self.path.exists() or self.path.stat().st_size == 0
            with open(self.path, "a", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
                if new:
                    w.writeheader()
                w.writerow(row)
                fh.flush()

    return CSVLogCallback


def _load_model(path: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if p.suffix == ".gguf" or (p.is_dir() and not (p / "config.json").exists() and any(p.glob("*.gguf"))):
        raise EclipticaError(
            f"{path}: trl cannot train a GGUF-loaded model; convert it to an HF folder "
            "(the smollm2-135m alias does this for the embedded model)"
        )
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as exc:
        raise EclipticaError(f"{path}: cannot load model ({str(exc).splitlines()[0]})") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def _lora_config(cfg: TrainConfig, model):
    from peft import LoraConfig

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in cfg.lora_targets if t not in names]
    if missing:
        raise EclipticaError(f"{cfg.model}: no module named {', '.join(missing)} for LoRA; set --lora-targets")
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets),
        bias="none",
        task_type="CAUSAL_LM",
    )


def _versions() -> dict:
    import peft
    import torch
    import transformers
    import trl

    from .. import __version__

    return {
        "ecliptica_bench": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
        "python": sys.version.split()[0],
    }


def build_trainer(cfg: TrainConfig, rows: list[dict], output_dir: Path, callbacks=(), model_path: str | None = None):
    """The configured trl trainer (PreferenceTrainer for cita/dpo, SFTTrainer for sft), not yet trained."""
    import torch

    from ..models import resolve_model

    model_path = model_path or resolve_model(cfg.model)
    use_bf16 = resolve_dtype(cfg.dtype) == "bfloat16"  # autocast over fp32 weights
    if use_bf16 and not torch.cuda.is_available() and not cpu_has_native_bf16():
        log.warning("--dtype bfloat16 on a CPU without native bf16 matmuls (AVX512-BF16/AMX): emulated, much slower than float32")
    model, tok = _load_model(model_path, torch.float32)
    peft_config = _lora_config(cfg, model)
    common = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1,
        logging_steps=1,
        report_to="none",
        seed=cfg.seed,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=2,
        bf16=use_bf16,
        use_cpu=not torch.cuda.is_available(),
        max_length=cfg.max_length,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every LoRA weight is on the policy's path
    )
    from transformers import TrainingArguments

    # transformers >= 5.2x renamed gradient_checkpointing (trl still defaults the old name to True)
    ckpt_field = (
        "activation_checkpointing"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        else "gradient_checkpointing"
    )
    common[ckpt_field] = cfg.gradient_checkpointing
    dataset = trl_dataset(rows, cfg.method, cfg.prompt_format)
    if cfg.method == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, completion_only_loss=True, packing=False)
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            peft_config=peft_config,
            callbacks=list(callbacks),
        )
    from trl import DPOConfig

    args = DPOConfig(**common, beta=cfg.beta, loss_type=["sigmoid"], precompute_ref_log_probs=False)
    return _preference_trainer_cls()(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=list(callbacks),
        kl_schedule=cfg.kl_schedule,
        sft_weight=cfg.sft_weight,
        pack=cfg.pack,
        ref_cache=ref_cache_for(model_path, resolve_dtype(cfg.dtype), model.config._attn_implementation, cfg.ref_cache_mb),
    )


def _last_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(
        (p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()), key=lambda p: int(p.name.split("-")[-1])
    )
    return found[-1] if found else None


# settings that may change on --resume (they do not change what is trained)
_RESUMABLE = {"out", "resume", "merge", "save_steps", "eval_heldout", "pack", "ref_cache_mb", "extra"}


def _run_defining(cfg: TrainConfig) -> dict:
    d = {k: v for k, v in asdict(cfg).items() if k not in _RESUMABLE}
    d["lora_targets"] = list(cfg.lora_targets)
    return d


def _prepare_out(cfg: TrainConfig, out: Path, data_sha: str, model_path: str) -> None:
    """Refuse to clobber: a fresh OUT must be empty or ours; --resume must match the recorded run."""
    cpath = out / CONFIG
    if cfg.resume:
        if not cpath.exists():
            raise EclipticaError(f"{out}: --resume needs a previous run there (no {CONFIG})")
        old = read_json(cpath)
        now = {**_run_defining(cfg), "model_path": model_path, "data_sha256": data_sha}
        # a setting the recorded run predates had its default then
        defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
        old = {k: old.get(k, defaults.get(k)) for k in now}
        diff = [k for k in now if old[k] != now[k]]
        if diff:
            raise EclipticaError(
                f"{out}: --resume with different settings than the recorded run: "
                + ", ".join(f"{k} {old.get(k)!r} -> {now[k]!r}" for k in diff)
            )
        last = _last_checkpoint(out / "checkpoints")
        if last is None:
            raise EclipticaError(f"{out}: nothing to resume (no checkpoints/checkpoint-N; train with --save-steps N)")
        state = read_json(last / "trainer_state.json")
        if state.get("max_steps") and state["global_step"] >= state["max_steps"]:
            raise EclipticaError(
                f"{out}: the run already finished (step {state['global_step']} of {state['max_steps']}); nothing to resume"
            )
        return
    if out.exists() and any(out.iterdir()):
        if not cpath.exists():
            raise EclipticaError(f"{out}: exists, is not empty and holds no ecliptica training run; choose another --out")
        if (out / "adapter").exists() or _last_checkpoint(out / "checkpoints") is not None:
            raise EclipticaError(f"{out}: already holds a training run; pass --resume to continue it or choose another --out")
        # a run that died before its first checkpoint left nothing worth keeping: start it again
        for name in ("train_log.csv", "summary.json", "pref_eval.json"):
            (out / name).unlink(missing_ok=True)


def _truncate_log(path: Path, upto_step: int) -> None:
    """On resume, drop log rows of steps the checkpoint does not include (they will be redone)."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= upto_step]
    import io

    from ..data.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def kl_summary(log_path: Path, optimised: bool) -> dict | None:
    """Final and mean per-step KL(pi || pi_ref) from the step log (every step of the run, resumed ones too)."""
    if not log_path.exists():
        return None
    with open(log_path, newline="", encoding="utf-8") as fh:
        kls = [float(r["kl"]) for r in csv.DictReader(fh) if r.get("kl") not in (None, "")]
    if not kls:
        return None
    return {
        "final": kls[-1],
        "mean": sum(kls) / len(kls),
        "max": max(kls),
        "steps": len(kls),
        "optimised": optimised,
        "measure": "mean over completion tokens of KL(pi || pi_ref) over the vocabulary, per step",
    }


def accuracy_table(report: dict) -> dict:
    """The headline numbers of an evaluate_preferences report, overall and per kind (axis)."""
    metrics = ("accuracy_logp_per_token", "pair_accuracy_logp_per_token", "accuracy_reward")
    parts = {"overall": report["overall"], **report.get("per_kind", {})}
    return {m: {name: part.get(m) for name, part in parts.items()} for m in metrics if m in report["overall"]}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_BASE_EVAL: dict[tuple, dict] = {}  # held-out preference evaluation of a base model, per process
# per-row log-probs of a base model (adapter disabled = the reference) on tokenized rows, per process
_BASE_LOGPS: dict[tuple, list[dict]] = {}


def _start_out(cfg: TrainConfig, out: Path, rows: list[dict], data_sha: str, dtype: str, processes: int) -> None:
    """The main process's part before training: check OUT, then record the run (or trim the log on --resume)."""
    from ..models import resolve_model

    model_path = resolve_model(cfg.model)  # the embedded alias converts once, here, before the others read it
    _prepare_out(cfg, out, data_sha, model_path)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / _STAGING, ignore_errors=True)  # a gathered adapter a killed run left behind
    if not cfg.resume:
        write_json(
            out / CONFIG,
            {
                **asdict(cfg),
                **_run_defining(cfg),
                "dtype_resolved": dtype,
                "model_path": model_path,
                "data_sha256": data_sha,
                "train_rows": len(rows),
                "processes": processes,
                "effective_batch": cfg.batch_size * processes * cfg.grad_accum,
                "kl_schedule": asdict(cfg.kl_schedule),
                "versions": _versions(),
            },
        )
    else:
        last = _last_checkpoint(out / "checkpoints")
        state = read_json(last / "trainer_state.json")
        _truncate_log(out / "train_log.csv", int(state["global_step"]))


_STAGING = ".adapter.gathered"  # FSDP/DeepSpeed: where trainer.save_model gathers the sharded adapter


def _save_adapter(trainer, out: Path, sharded: bool) -> None:
    """OUT/adapter (+ tokenizer), on the main process. A sharded run's adapter was gathered by every process
    into OUT/.adapter.gathered first (trainer.save_model); DDP's main process holds the whole model."""
    with staged_dir(out / "adapter", "adapter_config.json") as tmp:
        if sharded:
            for f in (out / _STAGING).iterdir():
                if f.name != "training_args.bin":
                    shutil.move(str(f), tmp / f.name)
            shutil.rmtree(out / _STAGING, ignore_errors=True)
        else:
            trainer.model.save_pretrained(tmp)
        trainer.processing_class.save_pretrained(tmp)


def train(cfg: TrainConfig) -> dict | None:
    """Train and save; returns the summary (also written to OUT/summary.json).

    Under a multi-process launch (dist.py) every process trains; the main one alone checks and writes OUT,
    evaluates (once) and returns the summary, the others return None."""
    import torch

    from ..models import resolve_model

    cfg.check()
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    out = Path(cfg.out)
    data_dir = Path(cfg.data)
    rows = load_prefs(data_dir, "train")
    if not rows:
        raise EclipticaError(f"{data_dir}: the train split is empty")
    data_sha = sha256_file(data_dir / PREFS_MANIFEST)
    ckpt_dir = out / "checkpoints"
    dtype = resolve_dtype(cfg.dtype)
    procs = dist.state()
    dist.on_main(_start_out, cfg, out, rows, data_sha, dtype, procs.num_processes)  # the others wait for it
    model_path = resolve_model(cfg.model)

    csv_cb = _csv_callback_cls()(out / "train_log.csv", cfg.method)
    trainer = build_trainer(cfg, rows, ckpt_dir, callbacks=[csv_cb], model_path=model_path)
    rcache = getattr(getattr(trainer, "head", None), "ref_cache", None)
    rc0 = (rcache.hits, rcache.misses) if rcache is not None else None
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(_last_checkpoint(ckpt_dir)) if cfg.resume else None)
    seconds = time.perf_counter() - t0
    steps_run = len(csv_cb.rows)
    tokens = None
    if hasattr(trainer, "head"):  # summed over the processes (a collective)
        keys = sorted(trainer.head.tokens)
        total = trainer.accelerator.reduce(
            torch.tensor([trainer.head.tokens[k] for k in keys], dtype=torch.float64, device=trainer.accelerator.device),
            reduction="sum",
        )
        tokens = {k: int(v) for k, v in zip(keys, total.tolist())}
    sharded = bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))
    if sharded:
        trainer.save_model(str(out / _STAGING))  # every process takes part; the main one writes
    if not procs.is_main_process:
        return None

    tok = trainer.processing_class
    _save_adapter(trainer, out, sharded)
    if cfg.merge:
        if sharded:  # this process holds a shard only: merge the saved adapter into a fresh base
            from peft import PeftModel

            model = PeftModel.from_pretrained(_load_model(model_path, torch.float32)[0], str(out / "adapter"))
        else:
            model = trainer.model
        merged = model.merge_and_unload()
        with staged_dir(out / "merged", "config.json") as tmp:
            merged.save_pretrained(tmp)
            tok.save_pretrained(tmp)
    heldout = load_prefs(data_dir, "heldout") if cfg.eval_heldout else []
    pref_eval = {}
    if heldout and cfg.resume and (out / "pref_eval.json").exists():
        pref_eval = {k: v for k, v in read_json(out / "pref_eval.json").items() if k == "before"}
    if heldout and not pref_eval:
        # the base model's held-out accuracy is the same for every method trained on these data in this process
        # (the demo trains DPO then CITA): compute it once
        memo = (model_path, data_sha, cfg.beta, cfg.max_length, cfg.prompt_format)
        if memo not in _BASE_EVAL:
            _BASE_EVAL[memo] = evaluate_preferences(
                model_path, None, heldout, beta=cfg.beta, max_length=cfg.max_length, prompt_format=cfg.prompt_format
            )
        pref_eval["before"] = _BASE_EVAL[memo]
    if heldout:
        pref_eval["after"] = evaluate_preferences(
            model_path, out / "adapter", heldout, beta=cfg.beta, max_length=cfg.max_length, prompt_format=cfg.prompt_format
        )
        write_json(out / "pref_eval.json", pref_eval)
    last = csv_cb.rows[-1] if csv_cb.rows else {}
    summary = {
        "method": cfg.method,
        "model_path": model_path,
        "dtype": dtype,
        "global_step": trainer.state.global_step,
        "steps_this_run": steps_run,
        "processes": procs.num_processes,
        "effective_batch": cfg.batch_size * procs.num_processes * cfg.grad_accum,  # pairs per optimizer step
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / steps_run, 3) if steps_run else None,
        "tokens_per_second": round(tokens["real"] / seconds, 1) if tokens and seconds > 0 else None,
        "tokens": tokens,  # padded: as trl batches them; packed: what the backbone ran; real: non-padding
        # batches whose reference pass came from RefCache (hits) or ran the backbone (misses), main process
        "reference_cache": (
            {"hits": rcache.hits - rc0[0], "misses": rcache.misses - rc0[1], "mb": round(rcache.bytes / 2**20, 1)}
            if rcache is not None
            else None
        ),
        "peak_rss_mb": round(peak_rss_mb(), 1),  # of the main process
        "train_loss": result.training_loss,
        "last": {k: last.get(k) for k in ("loss", "dpo", "kl", "sft", "reward_margin", "reward_accuracy", "kl_weight")},
        "kl_to_reference": kl_summary(out / "train_log.csv", optimised=cfg.method == "cita"),
        "heldout_accuracy": {when: accuracy_table(rep) for when, rep in pref_eval.items()} or None,
        "adapter": str(out / "adapter"),
        "merged": str(out / "merged") if cfg.merge else None,
        "pref_eval": pref_eval or None,
        "config": {**asdict(cfg), "lora_targets": list(cfg.lora_targets)},
    }
    write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate_preferences(
    model: str,
    adapter: str | Path | None,
    data,
    split: str = "heldout",
    beta: float = 0.1,
    batch_size: int = 4,
    max_length: int = 256,
    prompt_format: str = "chat",
) -> dict:
    """Does the model prefer the chosen response under each row's instruction?

    For every row: policy log-probs of chosen and rejected (sum and per token), and with an adapter the
    implicit reward r = log pi - log pi_ref (adapter disabled = reference). Reports
      accuracy_logp            log pi(chosen) > log pi(rejected)          (comparable before/after training)
      accuracy_logp_per_token  the same on per-token means (length-fair: the length pairs differ ~5x in length)
      pair_accuracy_*          share of switch pairs with BOTH rows right: the preference must flip with the
                               instruction, which a model that ignores the instruction cannot do
      accuracy_reward          r(chosen) > r(rejected), with an adapter only (0 vs 0 for the base model)
      dpo_loss                 mean -log sigmoid(beta x reward margin), with an adapter only
    each overall and per kind. `data` is a built preference dir (read `split`) or a list of rows.
    """
    import torch

    from ..models import resolve_model
    from .losses import dpo_sigmoid_loss

    rows = load_prefs(Path(data), split) if isinstance(data, (str, Path)) else list(data)
    if not rows:
        raise EclipticaError(f"{data}: split {split!r} has no rows to evaluate")
    path = resolve_model(model)
    net, tok = _load_model(path, torch.float32)
    if adapter is not None:
        from peft import PeftModel

        from ..backends.base import check_adapter

        adapter = check_adapter(str(adapter))  # an adapter folder, or a train --output-dir folder holding adapter/
        net = PeftModel.from_pretrained(net, str(adapter))
    net.eval()
    feats = [tokenize_pair(tok, prompt_messages(r, prompt_format), r["chosen"], r["rejected"]) for r in rows]
    res = pair_logps(net, feats, tok.pad_token_id, batch_size, max_length)
    # the base model's log-probs of these tokens, the same for every adapter on this base: computed once per process
    memo = (_model_files_key(path), batch_size, max_length, tok.pad_token_id, repr(feats))
    if adapter is None:
        _BASE_LOGPS[memo] = [dict(d) for d in res]
    else:
        if memo not in _BASE_LOGPS:
            with net.disable_adapter():
                _BASE_LOGPS[memo] = pair_logps(net, feats, tok.pad_token_id, batch_size, max_length)
        for d, ref in zip(res, _BASE_LOGPS[memo]):
            d["rc"], d["rr"] = ref["c"], ref["r"]
    for r, d in zip(rows, res):
        d.update(kind=r["kind"], pair=r["pair_id"])

    def summarise(items: list[dict]) -> dict:
        def ok_tok(d):
            return d["c"] / max(d["nc"], 1) > d["r"] / max(d["nr"], 1)

        def ok_rew(d):
            return (d["c"] - d["rc"]) > (d["r"] - d["rr"])

        def pair_acc(fn):
            pairs: dict[str, list[bool]] = {}
            for d in items:
                pairs.setdefault(d["pair"], []).append(fn(d))
            full = [all(v) for v in pairs.values() if len(v) > 1]
            return sum(full) / len(full) if full else None

        out = {
            "rows": len(items),
            "pairs": len({d["pair"] for d in items}),
            "accuracy_logp": sum(d["c"] > d["r"] for d in items) / len(items),
            "accuracy_logp_per_token": sum(ok_tok(d) for d in items) / len(items),
            "pair_accuracy_logp": pair_acc(lambda d: d["c"] > d["r"]),
            "pair_accuracy_logp_per_token": pair_acc(ok_tok),
            "mean_logp_chosen_per_token": sum(d["c"] / max(d["nc"], 1) for d in items) / len(items),
        }
        if adapter is not None:
            margins = torch.tensor([(d["c"] - d["rc"]) - (d["r"] - d["rr"]) for d in items])
            out["accuracy_reward"] = sum(ok_rew(d) for d in items) / len(items)
            out["pair_accuracy_reward"] = pair_acc(ok_rew)
            out["mean_reward_margin"] = float(beta * margins.mean())
            out["dpo_loss"] = float(
                dpo_sigmoid_loss(
                    margins, torch.zeros_like(margins), torch.zeros_like(margins), torch.zeros_like(margins), beta
                ).mean()
            )
        return out

    report = {
        "model": path,
        "adapter": str(adapter) if adapter else None,
        "split": split if isinstance(data, (str, Path)) else None,
        "prompt_format": prompt_format,
        "overall": summarise(res),
        "per_kind": {},
    }
    for kind in sorted({d["kind"] for d in res}):
        report["per_kind"][kind] = summarise([d for d in res if d["kind"] == kind])
    return report
