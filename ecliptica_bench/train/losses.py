"""The pieces CITA adds to trl's DPO loss, as pure functions (docs/training.md).

    L = DPO(beta)  +  lambda_KL(step) x KL(pi || pi_ref)  +  lambda_SFT x NLL(Y+)

The DPO term itself is trl's (`DPOTrainer`, loss_type "sigmoid"); what lives here is what trl does not have:
a real token-level KL over the full vocabulary (not the signed log-ratio shortcut log pi(y) - log pi_ref(y),
which can be negative and only looks at the sampled token), the per-token NLL on the chosen completion, and
the KL weight schedule. Everything works on completion positions only: `completion_head` projects their
hidden states through the LM head once per step and serves trl's log-probs, the KL and the metrics from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import EclipticaError


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label) per position: logits (..., V), labels (...) -> (...)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _head_chunks(hidden, w, labels, ref_logq, chunk_tokens, cdt, logp_all, logps, entropy, mean_logit, top1, kl):
    """_CompletionHead's forward, chunk by chunk, into the given output tensors (fp32 outside the projection)."""
    n = hidden.shape[0]
    for s in range(0, n, chunk_tokens):
        e = min(s + chunk_tokens, n)
        z = (hidden[s:e].to(cdt) @ w.t()).float()
        mean_logit[s:e] = z.mean(-1)
        top1[s:e] = z.argmax(-1) == labels[s:e]
        logp = logp_all[s:e]  # log-softmax written in place: no (chunk, V) temporaries beyond p
        torch.sub(z, torch.logsumexp(z, dim=-1, keepdim=True), out=logp)
        del z
        p = logp.exp()
        logps[s:e] = logp.gather(1, labels[s:e, None]).squeeze(1)
        p_logp = torch.linalg.vecdot(p, logp)  # sum_j p_j log p_j, fused (no product tensor)
        entropy[s:e] = -p_logp
        if kl is not None:  # KL = sum_j p_j log p_j - sum_j p_j log q_j
            kl[s:e] = p_logp - torch.linalg.vecdot(p, ref_logq[s:e])


class _CompletionHead(torch.autograd.Function):
    """LM head on completion positions: log p(label), and KL(pi || pi_ref) against given reference log-probs.

    One projection per token chunk serves the DPO log-probs, the KL and trl's logged metrics; the backward
    uses the saved log-softmax (no second projection):
        d log p(y) / dz_j = 1[j = y] - p_j            d KL / dz_j = p_j (log p_j - log q_j - KL)
    """

    @staticmethod
    def forward(ctx, hidden, weight, labels, ref_logq, chunk_tokens, keep_logq):
        ctx.set_materialize_grads(False)
        n, vocab = hidden.shape[0], weight.shape[0]
        dev = hidden.device
        cdt = torch.get_autocast_dtype(dev.type) if torch.is_autocast_enabled(dev.type) else weight.dtype
        w = weight.to(cdt)
        f32 = dict(device=dev, dtype=torch.float32)
        logps, entropy, mean_logit = (torch.empty(n, **f32) for _ in range(3))
        top1 = torch.empty(n, device=dev, dtype=torch.bool)
        kl = torch.empty(n, **f32) if ref_logq is not None else None
        logp_all = torch.empty((n, vocab), **f32)
        with torch.autocast(dev.type, enabled=False):  # the projection is cast by hand; the rest stays fp32
            _head_chunks(hidden, w, labels, ref_logq, chunk_tokens, cdt, logp_all, logps, entropy, mean_logit, top1, kl)
        ctx.save_for_backward(hidden, weight, labels, logp_all, ref_logq, kl)
        ctx.cdt, ctx.chunk_tokens = cdt, chunk_tokens
        ctx.mark_non_differentiable(entropy, mean_logit, top1, *([logp_all] if keep_logq else []))
        return logps, kl, entropy, mean_logit, top1, logp_all if keep_logq else None

    @staticmethod
    def backward(ctx, g_lp, g_kl, *_):
        hidden, weight, labels, logp_all, ref_logq, kl = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[:2]
        if g_kl is not None and kl is None:
            g_kl = None
        grad_h = torch.zeros(hidden.shape, device=hidden.device, dtype=torch.float32) if need_h else None
        grad_w = torch.zeros(weight.shape, device=weight.device, dtype=torch.float32) if need_w else None
        if g_lp is None and g_kl is None:
            return None, None, None, None, None, None
        w = weight.to(ctx.cdt)
        with torch.autocast(hidden.device.type, enabled=False):  # fp32 but for the hand-cast projection
            _head_grads(ctx, hidden, w, labels, logp_all, ref_logq, kl, g_lp, g_kl, grad_h, grad_w, need_h, need_w)
        return (grad_h.to(hidden.dtype) if need_h else None, grad_w.to(weight.dtype) if need_w else None, None, None, None, None)


def _head_grads(ctx, hidden, w, labels, logp_all, ref_logq, kl, g_lp, g_kl, grad_h, grad_w, need_h, need_w):
    for s in range(0, hidden.shape[0], ctx.chunk_tokens):
        e = min(s + ctx.chunk_tokens, hidden.shape[0])
        logp = logp_all[s:e]
        p = logp.exp()
        # gz = g_kl p (log p - log q - KL) - g_lp p + g_lp 1[j = y], built in place on as few (chunk, V) tensors as can be
        if g_kl is not None:
            gz = logp - ref_logq[s:e]
            gz.sub_(kl[s:e, None]).mul_(g_kl[s:e, None])
            if g_lp is not None:
                gz.sub_(g_lp[s:e, None])
            gz.mul_(p)
            del p
        else:
            gz = p.mul_(-g_lp[s:e, None])
        if g_lp is not None:
            gz.scatter_add_(1, labels[s:e, None], g_lp[s:e, None].float())
        gz = gz.to(ctx.cdt)
        if need_h:
            grad_h[s:e] = (gz @ w).float()
        if need_w:
            grad_w += (gz.t() @ hidden[s:e].to(ctx.cdt)).float()


@dataclass
class HeadOutput:
    logps: torch.Tensor  # (n,) log p(label)
    kl: torch.Tensor | None  # (n,) KL(pi || pi_ref) over the vocabulary, with ref_logq only
    entropy: torch.Tensor  # (n,) no gradient
    mean_logit: torch.Tensor  # (n,) no gradient
    is_top1: torch.Tensor  # (n,) label is the argmax; no gradient
    logq: torch.Tensor | None  # (n, V) log-softmax, with keep_logq only (the reference pass keeps it)


def completion_head(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ref_logq: torch.Tensor | None = None,
    chunk_tokens: int = 256,
    keep_logq: bool = False,
) -> HeadOutput:
    """Project completion-position hidden states (n, H) through the LM head weight (V, H), `chunk_tokens`
    rows at a time, and score them: log p(label) per token and, given the reference's log-softmax
    `ref_logq` (n, V), the token-level KL(pi || pi_ref) over the full vocabulary (not the signed log-ratio
    of the sampled token). Both are differentiable. Memory: one (n, V) fp32 log-softmax is kept for the
    backward pass (and returned as `logq` with keep_logq, for use as a later pass's ref_logq)."""
    if ref_logq is not None:
        ref_logq = ref_logq.detach()
    out = _CompletionHead.apply(hidden, weight, labels, ref_logq, int(chunk_tokens), bool(keep_logq))
    return HeadOutput(*out)


def dpo_sigmoid_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """-log sigmoid(beta x margin) per pair. Not used for training (trl computes the DPO term); it is the
    written-out formula the tests and `evaluate_preferences` check trl's value and the implicit reward against."""
    margin = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin)


@dataclass(frozen=True)
class KLSchedule:
    """lambda_KL per step: a constant, or linear from `start` to `end` over the run's steps."""

    start: float
    end: float

    @classmethod
    def parse(cls, weight: float, anneal: str | None) -> "KLSchedule":
        if not anneal:
            return cls(weight, weight)
        try:
            a, b = (float(x) for x in anneal.split(":"))
        except ValueError:
            raise EclipticaError(f"--kl-anneal {anneal!r}: expected START:END, e.g. 0.01:0.1") from None
        if a < 0 or b < 0:
            raise EclipticaError(f"--kl-anneal {anneal!r}: weights must be >= 0")
        return cls(a, b)

    def at(self, step: int, total_steps: int) -> float:
        """Weight at 0-based `step` of `total_steps`: start at the first step, end at the last."""
        if total_steps <= 1 or self.start == self.end:
            return self.start
        frac = min(max(step / (total_steps - 1), 0.0), 1.0)
        return self.start + (self.end - self.start) * frac

    @property
    def active(self) -> bool:
        return self.start > 0 or self.end > 0
