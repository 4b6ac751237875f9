"""Reference forms of CITA's loss terms on full logits (the trainer computes them fused, in
ecliptica_bench.train.losses.completion_head): the test oracles the fused code is checked against."""

from __future__ import annotations

import torch

from ecliptica_bench.train.losses import token_logps


def token_kl(policy_logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over (masked) positions of KL(pi || pi_ref) = sum_v p(v) (log p(v) - log p_ref(v)).

    policy_logits, ref_logits: (..., V); mask: (...) bool, or None for every position. Gradients flow
    through the policy only. Returns 0 (still attached to the graph) when no position is selected.
    """
    if mask is not None:
        policy_logits, ref_logits = policy_logits[mask], ref_logits[mask]
    logp = torch.log_softmax(policy_logits.float(), dim=-1)
    logq = torch.log_softmax(ref_logits.detach().float(), dim=-1)
    per_token = (logp.exp() * (logp - logq)).sum(-1)
    if per_token.numel() == 0:
        return policy_logits.sum() * 0.0
    return per_token.mean()


def sft_nll(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean negative log-likelihood per (masked) token: -mean log p(label)."""
    if mask is not None:
        logits, labels = logits[mask], labels[mask]
    if labels.numel() == 0:
        return logits.sum() * 0.0
    return -token_logps(logits, labels).mean()


def sequence_logps(
    logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log p over each row's completion tokens, and the number of those tokens.

    logits (B, T, V) from a causal LM over input_ids (B, T); completion_mask (B, T) marks completion tokens.
    Position t predicts token t+1, so logits[:, :-1] are scored against input_ids[:, 1:].
    """
    mask = completion_mask[:, 1:].bool()
    lp = token_logps(logits[:, :-1], input_ids[:, 1:]) * mask
    return lp.sum(-1), mask.sum(-1)
